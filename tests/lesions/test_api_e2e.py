"""The integrator's path end to end: multipart upload over the API -> broker -> real worker
process -> the finished analysis read back over the API."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import lesion_image

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_an_api_upload_is_analysed_by_a_real_worker_and_read_back(analysis_worker, api_client, lesion):
    response = api_client.post(f"/api/v1/lesions/{lesion.pk}/captures/",
                               {"image": SimpleUploadedFile("derm.jpg", lesion_image(), content_type="image/jpeg"),
                                "modality": "dermoscopic", "mm_per_pixel": "0.05"}, format="multipart")
    assert response.status_code == 201, response.content
    analysis_id = response.json()["latest_analysis"]["id"]
    deadline = time.monotonic() + 120
    while True:
        body = api_client.get(f"/api/v1/analyses/{analysis_id}/").json()
        if body["status"] in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert body["status"] == "done", body
    assert 0.0 <= body["melanoma_probability"] <= 1.0
    assert 0.0 < body["threshold"] < 1.0
    assert body["abcd"]["diameter"]["unit"] == "mm"
    assert {"asymmetry", "border", "colours"} <= set(body["abcd"])
    assert "histopathology" in body["note"]
    assert body["model_version"] and body["finished_at"]
    capture = api_client.get(f"/api/v1/captures/{response.json()['id']}/").json()
    assert capture["latest_analysis"]["id"] == analysis_id and capture["latest_analysis"]["status"] == "done"
