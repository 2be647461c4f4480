"""The checks behind /healthz: each says what it found, and `report` sums them up.

- "down" (503): the database or storage fails, so nothing can be saved.
- "degraded" (200): uploads are still saved, but analyses wait: the broker is down, or no
  worker answered a ping.
- "ok" (200): everything answered.
"""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection

from config.celery import app

_worker_cache: dict[str, float | bool | int] = {"checked_at": 0.0, "answered": False, "last_answer_at": 0.0,
                                               "count": 0}
WORKER_PING_CACHE_SECONDS = 15.0
WORKER_PING_TIMEOUT_SECONDS = 1.0


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
    """Write, read back and delete a small object: only that shows uploads can be stored
    (exists() succeeds on a read-only folder or a bucket without write permission)."""
    name = f"healthz/probe-{uuid.uuid4().hex}.txt"
    saved = ""
    try:
        saved = default_storage.save(name, ContentFile(b"healthz"))
        with default_storage.open(saved, "rb") as handle:
            if handle.read() != b"healthz":
                return "the probe object read back different bytes"
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        if saved:
            try:
                default_storage.delete(saved)
            except Exception:  # noqa: S110 - a probe left behind is removed by the orphan reconciler
                pass


def worker_status() -> dict[str, object]:
    """Whether any worker answered a ping recently (cached briefly so /healthz stays cheap)."""
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        return {"answered": None, "detail": "the embedded broker cannot broadcast pings"}
    now = time.monotonic()
    if now - float(_worker_cache["checked_at"]) > WORKER_PING_CACHE_SECONDS:
        try:
            # Celery's remote control over the broker (a Redis pub/sub fan-out): every worker
            # replies unless it runs with --without-control.
            replies = app.control.ping(timeout=WORKER_PING_TIMEOUT_SECONDS) or []
        except Exception:
            replies = []
        _worker_cache["checked_at"] = now
        _worker_cache["answered"] = bool(replies)
        _worker_cache["count"] = len(replies)
        if replies:
            _worker_cache["last_answer_at"] = time.time()
    last = float(_worker_cache["last_answer_at"])
    return {"answered": bool(_worker_cache["answered"]), "count": int(_worker_cache["count"]),
            "seconds_since_last_answer": round(time.time() - last, 1) if last else None}


def report() -> tuple[dict[str, object], int]:
    """The /healthz body and its HTTP status."""
    checks = {"database": check_database(), "storage": check_storage(), "broker": check_broker()}
    workers = worker_status() if checks["broker"] is None else {"answered": False, "detail": "broker down"}
    down = sorted(name for name in ("database", "storage") if checks[name])
    degraded = (["broker"] if checks["broker"] else []) + (["workers"] if workers.get("answered") is False else [])
    status = "down" if down else "degraded" if degraded else "ok"
    body = {
        "status": status,
        "down": down,
        "degraded": degraded,
        "checks": {name: ("ok" if problem is None else problem) for name, problem in checks.items()},
        "workers": workers,
    }
    return body, 503 if down else 200
