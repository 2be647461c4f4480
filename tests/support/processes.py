"""Starting and stopping real processes for end-to-end and fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL it when the test process dies. Without it a
    pytest killed mid-run leaves its Celery worker running, and that worker then takes the next
    run's tasks (same broker, same queues) and answers them from the wrong code or database."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def popen_tied(cmd: list[str], **kwargs) -> subprocess.Popen:
    """subprocess.Popen for a helper process that must not outlive the test run."""
    return subprocess.Popen(cmd, preexec_fn=_die_with_parent, **kwargs)


def start_worker(*, env: dict[str, str], name: str, log_path: Path, purge: bool = False, app: str = "config",
                 queues: str = "gpu,default", wait_ready: bool = True, timeout: float = 120.0,
                 ready_text: str = "models loaded", pool: str = "solo", concurrency: int = 1) -> subprocess.Popen:
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    full_env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set only inside the browser tests' process
    cmd = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues, "-P", pool, "-c", str(concurrency),
           "-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
           "-l", "INFO"]
    if purge:
        cmd.append("--purge")
    handle = open(log_path, "w")
    proc = popen_tied(cmd, cwd=REPO, env=full_env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.log_path = log_path  # type: ignore[attr-defined]
    if wait_ready:
        wait_for_log(proc, ready_text, timeout)
    return proc


def start_beat(*, env: dict[str, str], log_path: Path, schedule_dir: Path) -> subprocess.Popen:
    """celery beat, as deployed: it sends the sweep (and the reconciler) on their schedules."""
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO",
           "-s", str(schedule_dir / "beat-schedule"), "--pidfile", ""]
    handle = open(log_path, "w")
    proc = popen_tied(cmd, cwd=REPO, env=full_env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.log_path = log_path  # type: ignore[attr-defined]
    wait_for_log(proc, "beat: Starting", 60)
    return proc


def start_web(*, env: dict[str, str], port: int, log_path: Path, workers: int = 2) -> subprocess.Popen:
    """gunicorn serving the app, as deployed (threads, keep-alive connections to the database)."""
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    full_env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    cmd = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
           "--workers", str(workers), "--threads", "4", "--worker-class", "gthread", "--timeout", "60",
           "--log-level", "info", "--access-logfile", "-"]
    handle = open(log_path, "w")
    proc = popen_tied(cmd, cwd=REPO, env=full_env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.log_path = log_path  # type: ignore[attr-defined]
    wait_for_log(proc, "Booting worker", 60)
    from tests.support.servers import wait_for_port

    wait_for_port(port, 30)
    return proc


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


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
