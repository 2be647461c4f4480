"""Point this (web) process's real Celery client at another broker for one test."""

from __future__ import annotations


def publish_to(monkeypatch, url: str) -> None:
    """The app caches its connection pool and producer pool: drop both so the next publish
    connects to `url` (monkeypatch restores the originals afterwards)."""
    from celery import current_app

    monkeypatch.setattr(current_app.conf, "broker_url", url)
    monkeypatch.setattr(current_app.conf, "broker_write_url", None)
    monkeypatch.setattr(current_app, "_pool", None)
    monkeypatch.setattr(current_app.amqp, "_producer_pool", None)
