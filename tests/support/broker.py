"""Point this (web) process's real Celery client at another broker for one test."""

from __future__ import annotations


def publish_to(monkeypatch, url: str) -> None:
    """Celery reads CELERY_BROKER_URL / CELERY_BROKER_WRITE_URL from the environment before its
    configuration, and caches its connection and producer pools: set the first, drop the
    second, so the next publish connects to `url` (monkeypatch restores all afterwards)."""
    from celery import current_app

    monkeypatch.setenv("CELERY_BROKER_URL", url)
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", url)
    monkeypatch.setattr(current_app, "_pool", None)
    monkeypatch.setattr(current_app.amqp, "_producer_pool", None)
