"""A histopathology form with errors lands the keyboard focus on the error summary (#17 item 8)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in, screenshot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_histopathology_errors_focus_the_summary(page, clinician, lesion):
    log_in(page, "alice")
    page.goto(f"/lesions/{lesion.pk}/")
    page.get_by_label("N category").select_option("N1a")  # no sentinel node biopsy, no thickness
    page.get_by_role("button", name="Save histopathology").click()
    summary = page.locator("[data-role=error-summary]")
    expect(summary).to_be_visible()
    expect(page).to_have_title(re.compile(r"^Error"))
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Breslow thickness is needed")
    expect(summary).to_contain_text("sentinel node biopsy")
    screenshot(page, "histopathology-error-summary")
