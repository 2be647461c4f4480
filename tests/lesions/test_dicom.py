"""DICOM export: valid by dicom3tools' dciodvfy, identifiers and body site carried, audited."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import UTC, datetime

import numpy as np
import pydicom
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from clinic.models import AuditEvent
from lesions import services
from lesions.dicom import capture_dicom, overlay_dicom
from lesions.models import Analysis
from tests.conftest import SERVICE_SKIP_TAG
from tests.factories import LesionFactory, PatientFactory, lesion_image

pytestmark = pytest.mark.django_db


def dciodvfy_errors(data: bytes, tmp_path) -> tuple[list[str], str]:
    if shutil.which("dciodvfy") is None:
        pytest.skip(f"{SERVICE_SKIP_TAG} needs dciodvfy (apt-get install -y dicom3tools; make test installs it)")
    path = tmp_path / "export.dcm"
    path.write_bytes(data)
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    return [line for line in output.splitlines() if line.startswith("Error")], output


def finished_capture(lesion, *, modality: str = "dermoscopic", mm_per_pixel: float | None = 0.02):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image((160, 120)),
                                      modality=modality, mm_per_pixel=mm_per_pixel, device="DermLite DL4",
                                      taken_at=datetime(2026, 3, 4, 10, 11, 12, tzinfo=UTC))
    analysis = capture.analyses.get()
    overlay = np.zeros((120, 160, 3), np.uint8)
    overlay[:, :, 1] = 200
    out = io.BytesIO()
    Image.fromarray(overlay).save(out, "PNG")
    analysis.overlay = default_storage.save("analyses/overlay-test.png", ContentFile(out.getvalue()))
    analysis.status, analysis.finished_at = Analysis.Status.DONE, datetime(2026, 3, 4, 10, 12, tzinfo=UTC)
    analysis.save()
    return capture


@pytest.fixture
def dermoscopic_capture(clinic):
    patient = PatientFactory(clinic=clinic, name="Zoë Ångström", identifier="MRN-77", sex="female",
                             date_of_birth=datetime(1961, 5, 6).date())
    return finished_capture(LesionFactory(patient=patient, body_site="posterior torso"))


def test_a_dermoscopic_capture_is_a_valid_dermoscopic_photography_image(dermoscopic_capture, tmp_path):
    data = capture_dicom(dermoscopic_capture)
    errors, output = dciodvfy_errors(data, tmp_path)
    assert "DermoscopicPhotographyImage" in output
    assert errors == [], output
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.7" and ds.Modality == "DMS"
    assert ds.PatientID == "MRN-77" and str(ds.PatientName) == "Zoë Ångström" and ds.PatientSex == "F"
    assert ds.PatientBirthDate == "19610506" and ds.IssuerOfPatientID == "Clinic A"
    assert ds.StudyID == f"L{dermoscopic_capture.lesion_id}"
    region = ds.AnatomicRegionSequence[0]
    assert (region.CodeValue, region.CodingSchemeDesignator) == ("22943007", "SCT")
    assert region.AnatomicRegionModifierSequence[0].CodeValue == "255551008"  # posterior
    assert ds.AcquisitionDateTime.startswith("20260304101112")
    assert [float(v) for v in ds.PixelSpacing] == [0.02, 0.02]
    assert ds.pixel_array.shape == (120, 160, 3)
    with dermoscopic_capture.image.open("rb") as stored:
        assert (ds.pixel_array == np.asarray(Image.open(stored).convert("RGB"))).all()
    # Stable: a second export names the same study, series and instance.
    again = pydicom.dcmread(io.BytesIO(capture_dicom(dermoscopic_capture)))
    assert (again.StudyInstanceUID, again.SeriesInstanceUID, again.SOPInstanceUID) == (
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


def test_the_overlay_is_a_valid_secondary_capture_in_the_same_study(dermoscopic_capture, tmp_path):
    image = pydicom.dcmread(io.BytesIO(capture_dicom(dermoscopic_capture)))
    data = overlay_dicom(dermoscopic_capture)
    errors, output = dciodvfy_errors(data, tmp_path)
    assert errors == [], output
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert ds.StudyInstanceUID == image.StudyInstanceUID and ds.SeriesInstanceUID != image.SeriesInstanceUID
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
    assert ds.pixel_array[0, 0].tolist() == [0, 200, 0]


def test_a_clinical_close_up_is_a_valid_vl_photographic_image_without_spacing(clinic, tmp_path):
    capture = finished_capture(LesionFactory(patient=PatientFactory(clinic=clinic), body_site="palms/soles"),
                               modality="clinical", mm_per_pixel=None)
    data = capture_dicom(capture)
    errors, output = dciodvfy_errors(data, tmp_path)
    assert "VLPhotographicImage" in output
    assert errors == [], output
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.Modality == "XC" and "PixelSpacing" not in ds and "AnatomicRegionSequence" not in ds


def test_dicom_downloads_from_the_case_page_and_the_api_are_audited(client_logged_in, api_client,
                                                                     dermoscopic_capture):
    page = client_logged_in.get(f"/captures/{dermoscopic_capture.pk}/dicom/original/")
    assert page.status_code == 200 and page.headers["Content-Type"] == "application/dicom"
    assert "attachment" in page.headers["Content-Disposition"]
    assert pydicom.dcmread(io.BytesIO(page.content)).PatientID == "MRN-77"
    case = client_logged_in.get(f"/lesions/{dermoscopic_capture.lesion_id}/")
    assert f"/captures/{dermoscopic_capture.pk}/dicom/original/".encode() in case.content
    assert f"/captures/{dermoscopic_capture.pk}/dicom/overlay/".encode() in case.content
    api = api_client.get(f"/api/v1/captures/{dermoscopic_capture.pk}/dicom/")
    assert api.status_code == 200 and api.headers["Content-Type"] == "application/dicom"
    assert pydicom.dcmread(io.BytesIO(api.content)).SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.7"
    overlay = api_client.get(f"/api/v1/captures/{dermoscopic_capture.pk}/overlay/dicom/")
    assert overlay.status_code == 200
    rows = AuditEvent.objects.filter(action="download", object_type="Capture", detail__format="dicom")
    assert sorted(r.detail["image"] for r in rows) == ["original", "original", "overlay"]
    assert all(r.username == "alice" for r in rows)


def test_an_overlay_before_the_analysis_is_done_is_404(client_logged_in, api_client, lesion):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    assert client_logged_in.get(f"/captures/{capture.pk}/dicom/overlay/").status_code == 404
    assert api_client.get(f"/api/v1/captures/{capture.pk}/overlay/dicom/").status_code == 404
    assert not AuditEvent.objects.filter(action="download").exists()
