"""A dermatologist's day in real headless Chromium, against the live server and a real worker."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from lesions import notes
from lesions.models import Analysis, Capture, Lesion
from tests.browser.conftest import log_in, screenshot
from tests.factories import lesion_image

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_login_create_patient_and_lesion_upload_and_see_the_overlay(page, clinician, analysis_worker, tmp_path):
    page.goto("/")
    assert "/accounts/login/" in page.url  # login required
    screenshot(page, "01-login")
    log_in(page, "alice")
    page.get_by_role("link", name="New patient").click()
    page.get_by_label("MRN / identifier").fill("MRN-777")
    page.get_by_label("Name").fill("Grace Hopper")
    page.get_by_label("Fitzpatrick skin type").select_option("II")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/patients/\d+/$"))
    expect(page.get_by_role("heading", name=re.compile("Grace Hopper"))).to_be_visible()
    screenshot(page, "02-patient")
    page.get_by_role("link", name="Add a lesion").click()
    page.get_by_label("Label").fill("Left forearm")
    page.get_by_label("Body site").select_option("upper extremity")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/lesions/\d+/$"))
    lesion = Lesion.objects.get(label="Left forearm")
    image = tmp_path / "dermoscope.jpg"
    image.write_bytes(lesion_image((300, 225), radius=60))
    page.get_by_label("Images (JPEG or PNG, several allowed)").set_input_files(str(image))
    page.get_by_label("Pixel spacing (mm per pixel)").fill("0.05")
    page.get_by_role("button", name="Upload and analyse").click()
    page.wait_for_url(re.compile(rf"/lesions/{lesion.pk}/#captures$"))  # back to the section saved
    # The status updates without a reload, then the outline appears.
    page.wait_for_selector(".capture[data-status=done], .capture[data-status=failed]", timeout=90_000)
    page.wait_for_selector(".capture[data-status=done] img.capture-image[src*=overlay]")
    # One result line, named by the one naming function (a probability only for a calibrated model).
    result = page.locator("[data-role=result-line]")
    expect(result).to_be_visible()
    expect(result).to_contain_text(notes.current_score_name().capitalize())
    # Measurements on demand.
    expect(page.get_by_text("A – asymmetric axes")).to_be_hidden()
    page.get_by_text("Measurements and model details").click()
    expect(page.get_by_text("A – asymmetric axes")).to_be_visible()
    screenshot(page, "03-case-page")
    page.get_by_role("button", name="Mask").click()
    expect(page.locator("img.capture-image")).to_have_attribute("src", re.compile("/mask/"))
    page.get_by_role("button", name="Outline").click()
    natural_width = page.locator("img.capture-image").evaluate("img => img.decode().then(() => img.naturalWidth)")
    assert natural_width == 300  # the overlay image really loaded through the access-checked view
    capture = Capture.objects.get(lesion=lesion)
    assert capture.analyses.get().status == Analysis.Status.DONE


def test_webcam_capture_is_stored_and_analysed(page, clinician, lesion, analysis_worker):
    log_in(page, "alice")
    page.goto(f"/lesions/{lesion.pk}/")
    page.get_by_role("button", name="Start camera").click()
    expect(page.get_by_role("button", name="Take picture")).to_be_enabled()
    expect(page.get_by_text("Camera on.")).to_be_visible()
    page.get_by_role("button", name="Take picture").click()
    screenshot(page, "04-webcam-still")
    page.get_by_role("button", name="Retake").click()
    page.get_by_role("button", name="Take picture").click()
    page.get_by_role("button", name="Save picture").click()
    page.wait_for_selector(".capture[data-status=done], .capture[data-status=failed]", timeout=90_000)
    capture = Capture.objects.get(lesion=lesion)
    assert capture.source == Capture.Source.WEBCAM
    assert capture.width > 0 and capture.analyses.get().status == Analysis.Status.DONE
    screenshot(page, "05-webcam-analysed")


def test_no_camera_gives_a_clear_message(browser, live_server, clinician, lesion):
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    # Simulate a browser without a camera: getUserMedia rejects as it does with no device.
    page.add_init_script("navigator.mediaDevices.getUserMedia = () => Promise.reject("
                         "new DOMException('Requested device not found', 'NotFoundError'));")
    log_in(page, "alice")
    page.goto(f"/lesions/{lesion.pk}/")
    page.get_by_role("button", name="Start camera").click()
    expect(page.get_by_text("No camera was found")).to_be_visible()
    context.close()


def test_other_clinics_case_page_is_404(page, other_clinic_clinician, lesion):
    log_in(page, "bob")
    response = page.goto(f"/lesions/{lesion.pk}/")
    assert response.status == 404
    response = page.goto(f"/patients/{lesion.patient.pk}/")
    assert response.status == 404
    screenshot(page, "06-other-clinic-404")
