"""Helper processes started by the tests die with the test run, even when it is SIGKILLed: an
orphaned Celery worker would otherwise take the next run's tasks from the same broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.support.processes import REPO

SPAWNER = """
import sys, time
from tests.support.processes import popen_tied
child = popen_tied(["sleep", "120"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_tied_process_dies_when_the_test_process_is_killed():
    spawner = subprocess.Popen([sys.executable, "-c", SPAWNER], cwd=REPO, stdout=subprocess.PIPE, text=True)
    child = int(spawner.stdout.readline())
    try:
        assert _alive(child)
        os.kill(spawner.pid, signal.SIGKILL)  # as when CI or a person kills pytest
        spawner.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the helper process outlived the process that started it"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
