"""The benchmark seed builds a clinic whose pages open: full feature records on every analysis
(a seeded lesion with two captures used to answer 500 with KeyError('colours')), lesions with
1, 5 and 20 captures, assessments, histopathology and an audit trail."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from bench.seeding import SHOWCASE_IDENTIFIER, seed_clinic, showcase_lesions
from clinic.models import AuditEvent, Patient
from lesions.models import Analysis, Capture, Histopathology, Lesion

pytestmark = pytest.mark.django_db

PIPELINE_FEATURE_KEYS = {"asymmetry", "border", "colours", "diameter", "tds", "change"}


@pytest.fixture
def seeded():
    return seed_clinic(patients=12, lesions=45, captures=330, data_dir=None, images=2, log=lambda _: None)


@pytest.fixture
def bench_client(seeded) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    return client


def test_seed_builds_the_requested_clinic(seeded):
    assert (Patient.objects.count(), Lesion.objects.count(), Capture.objects.count()) == (12, 45, 330)
    assert Analysis.objects.filter(status="done").count() == 330
    assert Histopathology.objects.exists()
    assert Lesion.objects.exclude(decision="").exists()
    assert AuditEvent.objects.filter(object_type="Capture", action="create").count() == 330
    showcase = Patient.objects.get(identifier=SHOWCASE_IDENTIFIER)
    assert showcase.lesions.count() == 30
    assert set(showcase_lesions()) == {1, 5, 20}


def test_every_seeded_analysis_has_the_pipelines_feature_schema(seeded):
    from lesions.images import decode_rgb
    from ml.features import measure
    from tests.factories import lesion_image

    image = decode_rgb(lesion_image())
    mask = (image.mean(axis=-1) < 120).astype("uint8")
    schema = {key: set(value) for key, value in measure(image, mask, 0.02).items()}
    for features in Analysis.objects.values_list("features", flat=True):
        assert PIPELINE_FEATURE_KEYS <= set(features)
        for key, fields in schema.items():
            assert set(features[key]) == fields, key


@pytest.mark.parametrize("captures", [1, 5, 20])
@pytest.mark.parametrize("page", ["lesion_case", "lesion_compare", "lesion_report"])
def test_seeded_lesion_pages_open(bench_client, captures, page):
    from django.urls import reverse

    lesion_id = showcase_lesions()[captures]
    response = bench_client.get(reverse(page, args=[lesion_id]))
    assert response.status_code == 200
    html = response.content.decode()
    if page != "lesion_compare":
        # Every capture shows its colour record: the row the old seed could not render.
        assert len(re.findall(r"C – colours</th><td>\d", html)) == captures


def test_seeded_patient_page_lists_thirty_lesions(bench_client):
    showcase = Patient.objects.get(identifier=SHOWCASE_IDENTIFIER)
    response = bench_client.get(f"/patients/{showcase.pk}/")
    assert response.status_code == 200
    assert len(set(re.findall(r'href="/lesions/(\d+)/"', response.content.decode()))) == 30


def test_seed_refuses_too_few_captures():
    with pytest.raises(ValueError, match="at least"):
        seed_clinic(patients=2, lesions=40, captures=100, data_dir=None, images=1, log=lambda _: None)


@pytest.mark.django_db(transaction=True)
def test_bench_web_times_the_result_page_of_a_posted_search(live_server):
    """Searches are posted and shown under a session token (#11): bench_web must time that result
    page, not a patient list that ignores ?q= (which is what it timed before)."""
    import requests

    from bench.management.commands.bench_web import Command
    from bench.seeding import COMMON_SURNAME

    seed_clinic(patients=12, lesions=45, captures=330, data_dir=None, images=2, log=lambda _: None)
    command = Command()
    cookie = command._log_in(live_server.url, "bench", "bench-lesiontrack")
    path = command._posted_search(live_server.url, cookie, COMMON_SURNAME)
    assert "?s=" in path
    page = requests.get(live_server.url + path, headers={"Cookie": cookie}, timeout=30).text
    shown = set(re.findall(r'href="/patients/(\d+)/"', page))
    matching = {str(pk) for pk in Patient.objects.filter(name__icontains=COMMON_SURNAME).values_list("pk", flat=True)}
    assert shown and shown <= matching and len(matching) < Patient.objects.count()
