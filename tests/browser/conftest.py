from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test import testcases

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def _no_public_media(app):
    return app


# Django's live server would publish MEDIA_ROOT under MEDIA_URL; patient images are never
# public here (MEDIA_URL is None), so the live server serves the application alone, as gunicorn does.
testcases._MediaFilesHandler = _no_public_media


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("[needs-service] Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in the test thread while the browser is
    # open; the ORM calls of the tests and their fixtures are still synchronous and safe. Only for
    # this module's lifetime, so the variable reaches no other test.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            yield from _launch(playwright)
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def _fake_camera_file() -> str:
    """Chromium's fake camera plays this MJPEG (concatenated JPEG frames): a synthetic lesion, so that
    a webcam capture is a plausible lesion picture (its default test pattern is refused as not
    analysable, rightly)."""
    import tempfile

    from tests.factories import lesion_image

    handle = tempfile.NamedTemporaryFile(prefix="fake-camera-", suffix=".mjpeg", delete=False)
    with handle:
        frame = lesion_image((640, 480), radius=120)
        for _ in range(30):
            handle.write(frame)
    return handle.name


def _launch(playwright):
    camera = _fake_camera_file()
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run",
              "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
              f"--use-file-for-fake-video-capture={camera}"])
    yield browser
    browser.close()
    os.unlink(camera)


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1024, "height": 768})
    context.grant_permissions(["camera"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page, username: str, password: str = "correct-horse-battery") -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
