from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from tests.conftest import require_service, using_postgres, using_redis

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


def test_defaults_need_no_server(tmp_path):
    code = ("import django, json; from django.conf import settings; django.setup(); print(json.dumps({"
            "'db': settings.DATABASES['default']['ENGINE'], 'name': str(settings.DATABASES['default']['NAME']),"
            "'broker': settings.CELERY_BROKER_URL, 'debug': settings.DEBUG, 'media': str(settings.MEDIA_ROOT),"
            "'media_url': settings.MEDIA_URL, 'key': len(settings.SECRET_KEY)}))")
    result = run_python(code, {"DJANGO_SETTINGS_MODULE": "config.settings.base", "LESIONTRACK_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["db"].endswith("sqlite3") and values["name"].startswith(str(tmp_path))
    assert values["broker"] == "filesystem://"
    assert values["debug"] is False
    assert values["media"].startswith(str(tmp_path)) and values["media_url"] is None
    assert values["key"] >= 50 and (tmp_path / "secret_key").is_file()
    assert (tmp_path / "broker" / "out").is_dir()


def test_production_requires_a_secret_key(tmp_path):
    result = run_python("import django; django.setup()",
                        {"DJANGO_SETTINGS_MODULE": "config.settings.production", "LESIONTRACK_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.security
def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=REPO,
        env={**{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
             "DJANGO_SETTINGS_MODULE": "config.settings.production", "LESIONTRACK_VAR_DIR": str(tmp_path),
             "SECRET_KEY": "a-production-secret-key-that-is-long-and-random-9f8e7d6c5b4a3210zyxwvu"},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_web_process_does_not_import_tensorflow():
    code = ("import django, sys; django.setup(); from django.test import Client; import config.urls, lesions.views, "
            "lesions.tasks; print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = run_python(code, {"DJANGO_SETTINGS_MODULE": "config.settings.test"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False"


def test_web_process_reads_the_model_manifest_without_numpy_or_scipy():
    code = ("import django, sys; django.setup(); import config.urls, lesions.views, lesions.tasks; "
            "from lesions.services import current_manifest, current_model_version; m = current_manifest(); "
            "print(m.version == current_model_version(), m.operating_point().threshold > 0, "
            "'numpy' in sys.modules, 'scipy' in sys.modules)")
    result = run_python(code, {"DJANGO_SETTINGS_MODULE": "config.settings.test"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True True False False"


@pytest.mark.e2e
def test_healthz_reports_every_dependency(analysis_worker, monkeypatch, admin_client):
    from config import health

    # The worker check is a broadcast ping: the zero-setup broker of a bare `make test` delivers none.
    require_service(using_redis(), "a Redis broker (the worker check is a broadcast ping)")

    # The shared worker runs a solo pool, which answers pings only between tasks, and an earlier
    # test's job may still be running on it: ask again until it is free (a minute at most).
    deadline = time.monotonic() + 60
    while True:
        monkeypatch.setitem(health._worker_cache, "checked_at", 0.0)  # ask the workers now
        response = Client().get("/healthz")
        body = response.json()
        if body["degraded"] != ["workers"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert response.status_code == 200, body
    assert body["status"] == "ok" and body["down"] == [] and body["degraded"] == []
    assert set(body["checks"]) == {"database", "broker", "storage"}
    # The workers' state is a detail for staff (the public answer is ok/degraded/down per component).
    detail = admin_client.get("/healthz/detail").json()
    assert detail["workers"]["answered"] is True and detail["workers"]["count"] >= 1  # a real worker, over Redis


def test_healthz_says_degraded_when_the_broker_is_down(settings):
    """Uploads are still saved (their analyses wait), so the app is degraded, not down."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["down"] == [] and "broker" in body["degraded"]
    assert body["checks"]["broker"] != "ok"


def test_a_kept_postgresql_connection_has_tcp_keepalives_and_timeouts(db):
    """A kept connection to a host that vanished without closing it must not hang a request or a
    task for the kernel's 15 minutes: the options reach libpq."""
    require_service(using_postgres(), "DATABASE_URL=postgres://… (PostgreSQL)")
    connection.ensure_connection()
    parameters = connection.connection.get_dsn_parameters()
    assert (parameters["keepalives"], parameters["keepalives_idle"], parameters["tcp_user_timeout"]) == ("1", "30", "30000")
    assert parameters["connect_timeout"] == "10"
