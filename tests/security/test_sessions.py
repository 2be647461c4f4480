"""The idle timeout counts the clinician's activity in any tab; the page's own polling neither
keeps the session alive nor goes on forever."""

from __future__ import annotations

import time

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from clinic.middleware import LAST_ACTIVITY_KEY

pytestmark = [pytest.mark.security, pytest.mark.django_db]


def session_row(client: Client) -> Session:
    return Session.objects.get(session_key=client.cookies["sessionid"].value)


def set_last_activity(client: Client, seconds_ago: float) -> None:
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - seconds_ago
    session.save()


def test_polling_does_not_refresh_the_session(client_logged_in, lesion):
    client_logged_in.get(reverse("patient_list"))
    set_last_activity(client_logged_in, 120)
    before = session_row(client_logged_in)
    for _ in range(3):
        response = client_logged_in.get(reverse("lesion_statuses", args=[lesion.pk]))
        assert response.status_code == 200
        assert "sessionid" not in response.cookies
    after = session_row(client_logged_in)
    assert after.expire_date == before.expire_date
    assert after.get_decoded()[LAST_ACTIVITY_KEY] == before.get_decoded()[LAST_ACTIVITY_KEY]


def test_activity_refreshes_the_session(client_logged_in, lesion):
    client_logged_in.get(reverse("patient_list"))
    set_last_activity(client_logged_in, 120)
    before = session_row(client_logged_in)
    response = client_logged_in.get(reverse("lesion_case", args=[lesion.pk]))
    assert response.status_code == 200
    after = session_row(client_logged_in)
    assert after.expire_date > before.expire_date
    assert time.time() - after.get_decoded()[LAST_ACTIVITY_KEY] < 5


def test_idle_timeout_ends_the_session_in_every_tab(client_logged_in, lesion, settings):
    polling_tab = client_logged_in
    other_tab = Client()
    other_tab.cookies = polling_tab.cookies  # same browser, same session cookie
    other_tab.get(reverse("patient_list"))
    set_last_activity(polling_tab, settings.SESSION_COOKIE_AGE - 30)
    assert polling_tab.get(reverse("lesion_statuses", args=[lesion.pk])).status_code == 200
    set_last_activity(polling_tab, settings.SESSION_COOKIE_AGE + 1)
    ended = polling_tab.get(reverse("lesion_statuses", args=[lesion.pk]))
    assert ended.status_code == 302 and ended.url.startswith(reverse("login"))
    assert other_tab.get(reverse("patient_list")).status_code == 302


def test_polling_is_told_to_stop_after_a_bounded_idle_time(client_logged_in, lesion, settings):
    client_logged_in.get(reverse("patient_list"))
    assert client_logged_in.get(reverse("lesion_statuses", args=[lesion.pk])).json()["poll"] is True
    set_last_activity(client_logged_in, settings.STATUS_POLL_MAX_SECONDS + 1)
    assert client_logged_in.get(reverse("lesion_statuses", args=[lesion.pk])).json()["poll"] is False
    assert settings.STATUS_POLL_MAX_SECONDS < settings.SESSION_COOKIE_AGE


def test_session_settings():
    from django.conf import settings

    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_COOKIE_HTTPONLY and not settings.SESSION_SAVE_EVERY_REQUEST


def test_activity_is_written_at_most_once_a_minute(client_logged_in, lesion):
    """Each write is an UPDATE of the one session row that a clinician's concurrent requests
    share; within ACTIVITY_RESOLUTION_SECONDS of the last write an active request writes nothing,
    from then on it does."""
    from clinic.middleware import ACTIVITY_RESOLUTION_SECONDS

    client_logged_in.get(reverse("patient_list"))
    set_last_activity(client_logged_in, ACTIVITY_RESOLUTION_SECONDS - 5)
    before = session_row(client_logged_in)
    assert client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).status_code == 200
    after = session_row(client_logged_in)
    assert after.expire_date == before.expire_date
    assert after.get_decoded()[LAST_ACTIVITY_KEY] == before.get_decoded()[LAST_ACTIVITY_KEY]
    set_last_activity(client_logged_in, ACTIVITY_RESOLUTION_SECONDS + 1)
    assert client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).status_code == 200
    assert time.time() - session_row(client_logged_in).get_decoded()[LAST_ACTIVITY_KEY] < 5


def test_logging_in_starts_the_idle_clock(client, clinician, lesion):
    """Login is activity (user_logged_in): the first page after it writes no session."""
    client.force_login(clinician)
    assert time.time() - client.session[LAST_ACTIVITY_KEY] < 5
    before = session_row(client)
    assert client.get(reverse("lesion_case", args=[lesion.pk])).status_code == 200
    assert session_row(client).get_decoded() == before.get_decoded()
