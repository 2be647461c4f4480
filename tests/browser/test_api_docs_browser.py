"""The API's interactive docs render in a real browser under the app's strict CSP (script-src 'self')."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_renders_the_schema_without_csp_violations(page, clinician):
    blocked = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    log_in(page, "alice")
    page.goto("/api/v1/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("LesionTrack API", timeout=30_000)
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/lesions/{id}/captures/").first).to_be_visible()
    screenshot(page, "api-docs")
    assert blocked == []
    base = page.url.split("/api/")[0]
    assert all(url.startswith((base, "data:", "blob:")) for url in requests), "the docs page fetched from elsewhere"
