"""The audit trail cannot be changed or deleted, exports safely, and records the real client."""

from __future__ import annotations

import csv

import pytest
from django.contrib import admin
from django.db import DatabaseError, connection, transaction
from django.test import Client, RequestFactory
from django.urls import reverse

from clinic import audit
from clinic.client_address import client_ip
from clinic.models import AuditEvent
from tests.conftest import require_service, using_postgres
from tests.factories import UserFactory

pytestmark = [pytest.mark.security, pytest.mark.django_db]


@pytest.fixture
def event(patient, clinician):
    return audit.record(request=None, user=clinician, action=AuditEvent.Action.VIEW, obj=patient,
                        clinic_id=patient.clinic_id)


def test_postgresql_refuses_update_and_delete_of_audit_rows(event):
    require_service(using_postgres(), "DATABASE_URL=postgres://… (PostgreSQL)")
    for statement in ("UPDATE clinic_auditevent SET username = 'someone else' WHERE id = %s",
                      "DELETE FROM clinic_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement, [event.pk])
    event.refresh_from_db()
    assert event.username == "alice"


def test_the_orm_refuses_to_change_or_delete_audit_rows(event):
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(username="x")
    assert AuditEvent.objects.filter(pk=event.pk, username="alice").exists()


def test_not_even_a_superuser_can_delete_or_edit_audit_rows_in_admin(event, clinic):
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    model_admin = admin.site._registry[AuditEvent]
    request = RequestFactory().get("/")
    request.user = superuser
    assert not model_admin.has_delete_permission(request, event)
    assert not model_admin.has_change_permission(request, event)
    assert "delete_selected" not in model_admin.get_actions(request)
    assert client.post(reverse("admin:clinic_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    client.post(reverse("admin:clinic_auditevent_changelist"),
                {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_deleting_a_user_keeps_their_audit_rows(event, clinician):
    clinician.delete()
    kept = AuditEvent.objects.get(pk=event.pk)
    assert kept.username == "alice"


@pytest.mark.parametrize("planted", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1"])
def test_export_neutralises_cells_a_spreadsheet_would_execute(patient, clinician, tmp_path, planted):
    from django.core.management import call_command
    from django.utils import timezone

    patient.name = planted
    patient.save()
    audit.record(request=None, user=clinician, action=AuditEvent.Action.VIEW, obj=patient,
                 clinic_id=patient.clinic_id)
    out = tmp_path / "audit.csv"
    today = timezone.localdate().isoformat()
    call_command("export_audit", "--from", today, "--to", today, "--output", str(out))
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == 1
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    assert rows[0]["object_repr"].startswith("'" + planted)


# The client address: X-Forwarded-For is trusted only through the declared proxies.

def request_from(remote: str, forwarded: str | None = None):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


@pytest.mark.parametrize("proxies,remote,forwarded,expected", [
    (0, "203.0.113.9", "6.6.6.6", "203.0.113.9"),            # no proxy declared: the header is the client's lie
    (0, "203.0.113.9", None, "203.0.113.9"),
    (1, "10.0.0.2", "198.51.100.7", "198.51.100.7"),          # one proxy: the entry it appended
    (1, "10.0.0.2", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # a forged left part is ignored
    (2, "10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.3", "198.51.100.7"),
    (2, "10.0.0.2", "198.51.100.7", "198.51.100.7"),          # entered the chain at the inner proxy
    (1, "10.0.0.2", "", "10.0.0.2"),
    (1, "10.0.0.2", "2001:db8::1", "2001:db8::1"),
    (1, "10.0.0.2", "not-an-address", None),                  # nothing stored that does not parse
    (1, "10.0.0.2", "198.51.100.7:443", None),
    (0, "garbage", None, None),
])
def test_client_address_trusts_only_declared_proxies(settings, proxies, remote, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    assert client_ip(request_from(remote, forwarded)) == expected


def test_audit_rows_store_the_resolved_address(settings, client_logged_in, patient):
    settings.TRUSTED_PROXY_COUNT = 1
    client_logged_in.get(reverse("patient_detail", args=[patient.pk]), REMOTE_ADDR="10.0.0.2",
                         HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7")
    settings.TRUSTED_PROXY_COUNT = 0
    client_logged_in.get(reverse("patient_detail", args=[patient.pk]), REMOTE_ADDR="10.0.0.2",
                         HTTP_X_FORWARDED_FOR="198.51.100.7")
    views = list(AuditEvent.objects.filter(action="view", object_type="Patient").order_by("id")
                 .values_list("ip_address", flat=True))
    assert views == ["198.51.100.7", "10.0.0.2"]


def fail_logins(username: str, times: int, **meta) -> None:
    client = Client()
    for _ in range(times):
        client.post(reverse("login"), {"username": username, "password": "wrong"}, **meta)


def login(username: str, **meta):
    client = Client()
    return client.post(reverse("login"), {"username": username, "password": "correct-horse-battery"}, **meta)


def test_behind_a_proxy_one_attacker_does_not_lock_out_the_clinician(settings, clinician):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    fail_logins("alice", settings.AXES_FAILURE_LIMIT, HTTP_X_FORWARDED_FOR="6.6.6.6", **proxy)
    attacker = login("alice", HTTP_X_FORWARDED_FOR="6.6.6.6", **proxy)
    assert attacker.status_code == 429
    alice = login("alice", HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy)
    assert alice.status_code == 302


def test_without_a_declared_proxy_a_forged_header_does_not_dodge_the_lockout(settings, clinician):
    settings.TRUSTED_PROXY_COUNT = 0
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "alice", "password": "wrong"}, REMOTE_ADDR="203.0.113.9",
                    HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    response = login("alice", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.200")
    assert response.status_code == 429


def test_a_search_is_recorded_as_the_keyed_hash_an_investigator_can_recompute(settings):
    import hashlib
    import hmac

    from clinic.audit import search_digest

    # Case and spacing do not matter; the investigator hashes the name as written, lower case, single spaces.
    expected = hmac.new(settings.SECRET_KEY.encode(), b"ada example", hashlib.sha256).hexdigest()
    assert search_digest("  Ada   EXAMPLE ") == expected == search_digest("ada example")
    assert search_digest("adaexample") != expected


@pytest.mark.django_db
def test_an_audit_row_names_the_api_token_the_user_or_the_name_tried_and_what_was_touched(rf, api_token, clinician):
    from django.contrib.auth.models import AnonymousUser

    from clinic import audit
    from clinic.models import ApiToken, AuditEvent

    token = ApiToken.objects.get()
    request = rf.get("/api/v1/patients/", REMOTE_ADDR="10.9.8.7")
    request.auth = token  # as DRF's token authentication leaves it
    row = audit.record(request=request, user=clinician, action=AuditEvent.Action.SEARCH, clinic_id=None,
                       detail={"results": 3})
    assert row.detail == {"results": 3, "api_token": token.prefix}
    assert (row.user, row.username, row.ip_address) == (clinician, "alice", "10.9.8.7")
    assert (row.object_type, row.object_id, row.object_repr) == ("", "", "")
    # A failed login: no user, the name that was tried (cut to the column), nothing else invented.
    anonymous = audit.record(request=rf.get("/"), user=AnonymousUser(), action=AuditEvent.Action.LOGIN_FAILED,
                             clinic_id=None, username="x" * 151, object_type="User", object_id="7",
                             object_repr="y" * 201)
    assert (anonymous.user, anonymous.username, anonymous.detail) == (None, "x" * 150, {})
    assert (anonymous.object_type, anonymous.object_id, anonymous.object_repr) == ("User", "7", "y" * 200)
    unauthenticated = audit.record(request=None, user=object(), action=AuditEvent.Action.LOGIN_FAILED,
                                   clinic_id=None, username="mallory")
    assert (unauthenticated.user, unauthenticated.username) == (None, "mallory")
    long_name = type("Lesion", (), {"pk": 5, "__str__": lambda self: "z" * 300})()
    named = audit.record(request=None, user=None, action=AuditEvent.Action.VIEW, obj=long_name, clinic_id=None)
    assert (named.object_type, named.object_id, named.object_repr) == ("Lesion", "5", "z" * 200)
    # A row written by the system (a sweep, a management command) names no user and invents no name.
    assert (named.user, named.username) == (None, "")
