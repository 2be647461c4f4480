from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.conftest import require_service, using_postgres

pytestmark = [pytest.mark.security, pytest.mark.django_db]


def test_repeated_failed_logins_lock_the_account(clinician):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "alice", "password": "correct-horse-battery"})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_correct_login_works_before_lockout(clinician):
    client = Client()
    response = client.post(reverse("login"), {"username": "alice", "password": "correct-horse-battery"})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(clinician.pk)


def test_security_headers_on_pages(client_logged_in):
    response = client_logged_in.get(reverse("patient_list"))
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert "media-src 'self' blob: mediastream:" in csp  # the webcam preview still works
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "camera=(self)" in response.headers["Permissions-Policy"]
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_sessions_expire_after_inactivity_and_cookies_are_http_only():
    # Saving on every request let status polling keep an idle session alive; activity is now
    # counted by clinic.middleware.IdleSessionTimeoutMiddleware (behaviour: test_sessions.py).
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert not settings.SESSION_SAVE_EVERY_REQUEST and settings.SESSION_COOKIE_HTTPONLY
    assert "clinic.middleware.IdleSessionTimeoutMiddleware" in settings.MIDDLEWARE


def test_password_validators_refuse_weak_passwords():
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        validate_password("password1")
    validate_password("a sufficiently long passphrase 42")


def test_media_has_no_public_url(lesion):
    from django.core.files.storage import default_storage

    from lesions import services
    from tests.factories import lesion_image

    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    with pytest.raises(ValueError):
        default_storage.url(capture.image.name)
    assert settings.MEDIA_URL is None
    assert not str(settings.MEDIA_ROOT).startswith(str(settings.STATIC_ROOT))


@pytest.mark.django_db(transaction=True)
def test_pg_dump_restores_into_a_fresh_database(patient, tmp_path):
    require_service(using_postgres(), "DATABASE_URL=postgres://… (PostgreSQL)")
    require_service(shutil.which("pg_dump") is not None and shutil.which("pg_restore") is not None,
                    "pg_dump and pg_restore")
    from django.db import connection

    db = connection.settings_dict
    common = ["-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432), "-U", db["USER"]]
    dump = tmp_path / "lesiontrack.dump"
    subprocess.run(["pg_dump", *common, "--format=custom", f"--file={dump}", db["NAME"]], check=True)
    restored = f"{db['NAME']}_restore_{os.getpid()}"
    subprocess.run(["dropdb", *common, "--if-exists", restored], check=True)
    subprocess.run(["createdb", *common, restored], check=True)
    try:
        subprocess.run(["pg_restore", *common, "--no-owner", f"--dbname={restored}", str(dump)], check=True)
        result = subprocess.run(["psql", *common, "-tAc", "SELECT identifier, name FROM clinic_patient", restored],
                                check=True, capture_output=True, text=True)
        assert f"{patient.identifier}|{patient.name}" in result.stdout
    finally:
        subprocess.run(["dropdb", *common, "--if-exists", restored], check=True)
