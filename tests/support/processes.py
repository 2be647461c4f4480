"""Starting and stopping real processes for end-to-end and fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def start_worker(*, env: dict[str, str], name: str, log_path: Path, purge: bool = False, app: str = "config",
                 queues: str = "gpu,default", wait_ready: bool = True, timeout: float = 120.0) -> subprocess.Popen:
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    full_env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set only inside the browser tests' process
    cmd = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues, "-P", "solo", "-c", "1",
           "-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
           "-l", "INFO"]
    if purge:
        cmd.append("--purge")
    handle = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.log_path = log_path  # type: ignore[attr-defined]
    if wait_ready:
        wait_for_log(proc, "models loaded", timeout)
    return proc


def wait_for_log(proc: subprocess.Popen, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    path: Path = proc.log_path  # type: ignore[attr-defined]
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before '{text}':\n{path.read_text()[-3000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"no '{text}' within {timeout}s:\n{path.read_text()[-3000:]}")


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def kill_hard(proc: subprocess.Popen) -> None:
    stop_process(proc, signal.SIGKILL)


def run_sweep(env: dict[str, str]) -> str:
    """The operator's (and beat's) sweep as its own process: re-enqueue whatever is stuck."""
    result = subprocess.run([sys.executable, "manage.py", "requeue_stuck_analyses"], cwd=REPO,
                            env={**os.environ, **env, "ANALYSIS_STUCK_AFTER_SECONDS": "0"},
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return result.stdout
