"""Reachability checks for /healthz."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection

from config.celery import app

_worker_cache: dict[str, float | bool] = {"checked_at": 0.0, "answered": False, "last_answer_at": 0.0}
WORKER_PING_CACHE_SECONDS = 15.0


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return None
    except Exception as exc:  # any driver error means "down"; the message says why
        return f"{type(exc).__name__}: {exc}"


def check_broker() -> str | None:
    try:
        with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def check_storage() -> str | None:
    try:
        default_storage.exists("healthz-probe")
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def worker_status() -> dict[str, object]:
    """Whether any worker answered a ping recently (cached briefly so /healthz stays cheap)."""
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        return {"answered": None, "detail": "the embedded broker cannot broadcast pings"}
    now = time.monotonic()
    if now - float(_worker_cache["checked_at"]) > WORKER_PING_CACHE_SECONDS:
        try:
            replies = app.control.ping(timeout=1.0) or []
        except Exception:
            replies = []
        _worker_cache["checked_at"] = now
        _worker_cache["answered"] = bool(replies)
        if replies:
            _worker_cache["last_answer_at"] = time.time()
    last = float(_worker_cache["last_answer_at"])
    return {"answered": bool(_worker_cache["answered"]),
            "seconds_since_last_answer": round(time.time() - last, 1) if last else None}
