"""The Celery app shared by web (which only enqueues) and workers."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("lesiontrack")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def keep_database_connections_as_web_requests_do(sender=None, **_kwargs) -> None:
    """Around each task, what Django does around each request: a connection past CONN_MAX_AGE, or
    broken by an error, is closed, and a kept one is checked before its first use
    (CONN_HEALTH_CHECKS). Celery's own Django fix-up closed the connection before and after every
    task instead (CELERY_DB_REUSE_MAX in the settings turns that off): each analysis and each
    thumbnail opened a new PostgreSQL session, a backend process to start and authenticate, and
    the trigger functions to load again. An eager task runs inside its caller's transaction: its
    connection is the caller's to manage."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections  # noqa: PLC0415 -- workers only; settings are loaded by then

    close_old_connections()
