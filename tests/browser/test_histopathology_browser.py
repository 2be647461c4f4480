"""A histopathology form with errors lands the keyboard focus on the error summary (#17 item 8)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in, screenshot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_histopathology_errors_focus_the_summary(page, clinician, lesion):
    log_in(page, "alice")
    page.goto(f"/lesions/{lesion.pk}/")
    page.get_by_label("N category").select_option("N1a")  # no sentinel node biopsy, no thickness
    page.get_by_role("button", name="Save histopathology").click()
    summary = page.locator("[data-role=error-summary]")
    summary.wait_for()
    assert page.title().startswith("Error")
    assert page.evaluate("document.activeElement.dataset.role") == "error-summary"
    text = summary.inner_text()
    assert "Breslow thickness is needed" in text and "sentinel node biopsy" in text
    screenshot(page, "histopathology-error-summary")
