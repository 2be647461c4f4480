"""The Celery app shared by web (which only enqueues) and workers."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("lesiontrack")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
