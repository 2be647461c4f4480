"""What the clinician sees when a webcam picture cannot be saved, in real headless Chromium.

Each failure keeps the picture on screen with a message that says what happened and what to do:
a refused image (the server's own reason), camera permission denied (allow it, or upload a file),
and an ended session (log in again; the picture was not saved), whether the app answers it
(JSON 401) or a proxy in front of it does (an HTML login page, directly or by redirect).
"""

from __future__ import annotations

import re

import pytest
from django.contrib.sessions.models import Session
from playwright.sync_api import expect

from lesions.models import Capture
from tests.browser.conftest import CHROMIUM, log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PICTURE_KEPT = "Your picture is still here; try again."
SESSION_ENDED = "Your session has ended. Log in again in another tab, then save the picture again."


def _take_picture(page, lesion) -> None:
    page.goto(f"/lesions/{lesion.pk}/")
    page.get_by_role("button", name="Start camera").click()
    expect(page.get_by_role("button", name="Take picture")).to_be_enabled()
    page.get_by_role("button", name="Take picture").click()
    expect(page.get_by_role("button", name="Save picture")).to_be_enabled()


def _webcam_message(page):
    return page.locator("[data-role=webcam-message]")


def _expect_picture_kept(page) -> None:
    expect(page.locator("[data-role=still]")).to_be_visible()
    expect(page.get_by_role("button", name="Save picture")).to_be_enabled()
    expect(page.get_by_role("button", name="Retake")).to_be_enabled()


def test_a_refused_image_shows_the_servers_reason_and_keeps_the_picture(page, clinician, lesion, settings):
    # A real refusal from the real endpoint (HTTP 400): the camera's frame is above a pixel limit.
    settings.UPLOAD_MAX_PIXELS = 100_000
    log_in(page, "alice")
    _take_picture(page, lesion)
    with page.expect_response(re.compile(r"/webcam/$")) as answer:
        page.get_by_role("button", name="Save picture").click()
    assert answer.value.status == 400
    message = _webcam_message(page)
    expect(message).to_have_text(re.compile(r"^Not saved: The image is \d+×\d+ pixels; the limit is 0\.1 megapixels\. "
                                            + re.escape(PICTURE_KEPT) + "$"))
    expect(message).to_have_class(re.compile(r"\berror\b"))
    _expect_picture_kept(page)
    screenshot(page, "webcam-refused-400")
    assert not Capture.objects.filter(lesion=lesion).exists()


@pytest.fixture
def page_camera_blocked(browser, live_server):
    """A browser launched without --use-fake-ui-for-media-stream (which consents to every camera
    request) and a context granted no camera permission: getUserMedia rejects with NotAllowedError,
    as when a clinician clicks "Block". The fake device stays, so the refusal is not "no camera"."""
    blocked = browser.browser_type.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--use-fake-device-for-media-stream"])
    context = blocked.new_context(base_url=live_server.url, viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
    blocked.close()


def test_camera_permission_denied_says_so_and_offers_the_upload(page_camera_blocked, clinician, lesion):
    page = page_camera_blocked
    log_in(page, "alice")
    page.goto(f"/lesions/{lesion.pk}/")
    error_name = page.evaluate("navigator.mediaDevices.getUserMedia({video: true}).then(() => 'granted', e => e.name)")
    assert error_name == "NotAllowedError"  # the browser really refuses: nothing in the page is stubbed
    page.get_by_role("button", name="Start camera").click()
    message = _webcam_message(page)
    expect(message).to_have_text("Camera permission was denied. Allow camera access for this site, "
                                 "or upload a file instead.")
    expect(message).to_have_class(re.compile(r"\berror\b"))
    expect(page.get_by_role("button", name="Start camera")).to_be_enabled()  # can try again once allowed
    expect(page.get_by_role("button", name="Take picture")).to_be_disabled()
    expect(page.get_by_label("Images (JPEG or PNG, several allowed)")).to_be_visible()  # the upload alternative
    screenshot(page, "webcam-permission-denied")


def test_an_ended_session_says_log_in_again_and_that_nothing_was_saved(page, clinician, lesion):
    log_in(page, "alice")
    _take_picture(page, lesion)
    Session.objects.all().delete()  # the session ends on the server while the picture is on screen
    with page.expect_response(re.compile(r"/webcam/$")) as answer:
        page.get_by_role("button", name="Save picture").click()
    assert answer.value.status == 401
    expect(_webcam_message(page)).to_have_text(f"Not saved: {SESSION_ENDED} {PICTURE_KEPT}")
    _expect_picture_kept(page)
    screenshot(page, "webcam-session-ended-json")
    assert not Capture.objects.filter(lesion=lesion).exists()


@pytest.mark.parametrize("proxy_answer", ["401 login page", "redirect to login"])
def test_an_ended_session_answered_by_a_proxy_in_html_says_log_in_again(page, clinician, lesion, proxy_answer):
    log_in(page, "alice")

    def proxy(route):
        if proxy_answer == "401 login page":
            route.fulfill(status=401, content_type="text/html",
                          body="<!doctype html><title>Sign in</title><form><input name=username></form>")
        else:
            route.fulfill(status=302, headers={"Location": "/accounts/login/?next=/"})

    page.route(re.compile(r"/webcam/$"), proxy)
    _take_picture(page, lesion)
    page.get_by_role("button", name="Save picture").click()
    expect(_webcam_message(page)).to_have_text(f"Not saved: {SESSION_ENDED} {PICTURE_KEPT}")
    _expect_picture_kept(page)
    screenshot(page, f"webcam-session-ended-{proxy_answer.replace(' ', '-')}")
    assert not Capture.objects.filter(lesion=lesion).exists()


def test_an_unexpected_html_answer_is_not_called_a_connection_failure(page, clinician, lesion):
    log_in(page, "alice")
    page.route(re.compile(r"/webcam/$"),
               lambda route: route.fulfill(status=502, content_type="text/html", body="<h1>Bad gateway</h1>"))
    _take_picture(page, lesion)
    page.get_by_role("button", name="Save picture").click()
    expect(_webcam_message(page)).to_have_text(
        f"Not saved: the server answered unexpectedly (HTTP 502). {PICTURE_KEPT}")
    _expect_picture_kept(page)
