"""Run the whole app on one machine: a Celery worker (with beat) in a child process and the
Django development server in this one, exactly the production split of web and worker."""

from __future__ import annotations

import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start a Celery worker (gpu + default queues, with beat) and the web server on 127.0.0.1:8000."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args, addr: str, **options) -> None:
        worker_cmd = [sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "-Q", "gpu,default",
                      "-P", "solo", "-l", "INFO", "-n", "local@%h",
                      "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")]
        self.stdout.write(f"Starting worker: {' '.join(worker_cmd[1:])}")
        worker = subprocess.Popen(worker_cmd)
        try:
            self.stdout.write(f"Web server on http://{addr}/ (broker: {settings.CELERY_BROKER_URL.split('@')[-1]})")
            call_command("runserver", addr, use_reloader=False)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
