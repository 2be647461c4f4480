"""API tokens: hashed at rest, bound to one clinic, revocable, made in the admin."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client
from rest_framework.test import APIClient

from clinic.models import ApiToken, AuditEvent
from clinic.services import api_token_create, api_token_revoke
from tests.factories import ClinicFactory, MembershipFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_only_the_hash_of_a_token_is_stored(clinician, clinic):
    issued = api_token_create(request=None, created_by=None, clinic=clinic, user=clinician, name="EHR bridge")
    row = ApiToken.objects.get()
    assert issued.plaintext.startswith(f"lt_{row.prefix}_")
    assert row.key_hash == hashlib.sha256(issued.plaintext.encode()).hexdigest()
    stored = " ".join(str(v) for v in ApiToken.objects.values().get().values())
    assert issued.plaintext not in stored and issued.plaintext.split("_", 2)[2] not in stored


def test_a_token_needs_a_membership_of_its_clinic(clinician, other_clinic):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="does not belong"):
        api_token_create(request=None, created_by=None, clinic=other_clinic, user=clinician, name="x")
    assert not ApiToken.objects.exists()


def test_requests_without_a_valid_token_get_401(api_token, patient):
    url = "/api/v1/patients/"
    assert APIClient().get(url).status_code == 401
    assert APIClient().get(url).headers["WWW-Authenticate"].startswith("Bearer")
    wrong_secret = api_token[: -4] + ("AAAA" if not api_token.endswith("AAAA") else "BBBB")
    for bad in (wrong_secret, "lt_000000000000_nope", "garbage", api_token + "x"):
        response = client_with(bad).get(url)
        assert response.status_code == 401, bad
        assert "Ada Example" not in response.content.decode()
    assert client_with(api_token).get(url).status_code == 200


def test_a_revoked_token_stops_working_and_the_revocation_is_audited(clinician, clinic, patient):
    issued = api_token_create(request=None, created_by=None, clinic=clinic, user=clinician, name="Dermoscope")
    assert client_with(issued.plaintext).get("/api/v1/patients/").status_code == 200
    api_token_revoke(request=None, revoked_by=clinician, token=issued.token)
    assert client_with(issued.plaintext).get("/api/v1/patients/").status_code == 401
    assert AuditEvent.objects.filter(object_type="ApiToken", action="change", detail__revoked=True).count() == 1


def test_a_token_stops_working_when_its_user_leaves_the_clinic(clinician, clinic, api_token):
    clinician.memberships.all().delete()
    assert client_with(api_token).get("/api/v1/patients/").status_code == 401


def test_a_token_sees_only_its_own_clinic_even_if_its_user_has_two(clinician, clinic):
    second = ClinicFactory(name="Second clinic")
    MembershipFactory(user=clinician, clinic=second)
    PatientFactory(clinic=clinic, name="In A", identifier="A1")
    theirs = PatientFactory(clinic=second, name="In second", identifier="S1")
    token = api_token_create(request=None, created_by=None, clinic=clinic, user=clinician, name="A only").plaintext
    names = [p["name"] for p in client_with(token).get("/api/v1/patients/").json()["results"]]
    assert names == ["In A"]
    assert client_with(token).get(f"/api/v1/patients/{theirs.pk}/").status_code == 404
    # The same user on the pages still sees both clinics (the token narrows, it does not change the user).
    page = Client()
    page.force_login(clinician)
    assert page.get(f"/patients/{theirs.pk}/").status_code == 200


def test_admin_creates_a_token_shows_it_once_and_revokes_it(clinician, clinic):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    response = browser.post("/admin/clinic/apitoken/add/", {"name": "Dermoscope room 2", "clinic": clinic.pk,
                                                             "user": clinician.pk}, follow=True)
    assert response.status_code == 200
    token = ApiToken.objects.get()
    shown = [str(m) for m in response.context["messages"]]
    plaintext = next(word for m in shown for word in m.split() if word.startswith("lt_"))
    assert hashlib.sha256(plaintext.encode()).hexdigest() == token.key_hash
    assert token.created_by == admin
    assert client_with(plaintext).get("/api/v1/patients/").status_code == 200
    # Shown once: the change page does not show it again.
    assert plaintext not in browser.get(f"/admin/clinic/apitoken/{token.pk}/change/").content.decode()
    browser.post("/admin/clinic/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert client_with(plaintext).get("/api/v1/patients/").status_code == 401


def test_admin_refuses_a_token_for_a_user_outside_the_clinic(clinician, other_clinic):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    response = browser.post("/admin/clinic/apitoken/add/", {"name": "x", "clinic": other_clinic.pk,
                                                             "user": clinician.pk})
    assert response.status_code == 200 and b"does not belong" in response.content
    assert not ApiToken.objects.exists()


def test_requests_are_rate_limited_per_token(settings, api_client, patient):
    from django.core.cache import cache

    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"api_token": "3/minute", "api_upload": "1/minute"}}
    try:
        codes = [api_client.get("/api/v1/patients/").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert "Retry-After" in api_client.get("/api/v1/patients/").headers
    finally:
        cache.clear()
