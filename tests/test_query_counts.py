"""Query counts per page do not grow with the number of related rows (no N+1)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.selectors import missing_generation_triggers, patient_for
from lesions import services
from lesions.models import Analysis
from lesions.selectors import analysis_for, capture_for, case_lesion_for, lesion_for
from tests.factories import LesionFactory, PatientFactory, lesion_image

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _generation_triggers_checked():
    """Each web process checks the data generation's triggers once, on its first cached page
    (clinic.selectors.missing_generation_triggers): done here, so that whichever test comes first
    counts the queries of every later request, not that one-off check."""
    if connection.vendor == "postgresql":
        missing_generation_triggers()


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


def add_captures(lesion, n: int) -> None:
    data = lesion_image()
    for _ in range(n):
        capture = services.capture_create(request=None, user=None, lesion=lesion, data=data)
        Analysis.objects.filter(capture=capture).update(status="done", probability=0.1, threshold=0.2, features={
            "asymmetry": {"axes_asymmetric": 0, "index_major": 0, "index_minor": 0, "orientation_degrees": 0},
            "border": {"compactness": 1, "abrupt_segments": 0},
            "colours": {"present": ["dark_brown"], "count": 1, "fractions": {}},
            "diameter": {"value": 5, "unit": "px", "area": 20, "area_unit": "px²"}})


def test_patient_list_constant(client_logged_in, clinic):
    PatientFactory(clinic=clinic)
    one = queries_for(client_logged_in, reverse("patient_list"))
    PatientFactory.create_batch(49, clinic=clinic)
    assert queries_for(client_logged_in, reverse("patient_list")) == one


def test_patient_detail_constant(client_logged_in, patient):
    LesionFactory(patient=patient)
    one = queries_for(client_logged_in, reverse("patient_detail", args=[patient.pk]))
    LesionFactory.create_batch(49, patient=patient)
    assert queries_for(client_logged_in, reverse("patient_detail", args=[patient.pk])) == one


def test_case_page_constant(client_logged_in, lesion):
    add_captures(lesion, 1)
    one = queries_for(client_logged_in, reverse("lesion_case", args=[lesion.pk]))
    add_captures(lesion, 49)
    assert queries_for(client_logged_in, reverse("lesion_case", args=[lesion.pk])) == one


@pytest.mark.parametrize("url", ["/admin/clinic/patient/", "/admin/lesions/lesion/", "/admin/lesions/capture/",
                                 "/admin/lesions/analysis/"])
def test_admin_changelists_constant(admin_client, clinic, url):
    lesion = LesionFactory(patient=PatientFactory(clinic=clinic))
    add_captures(lesion, 1)
    one = queries_for(admin_client, url)
    for _ in range(7):
        extra = LesionFactory(patient=PatientFactory(clinic=clinic))
        add_captures(extra, 7)
    assert queries_for(admin_client, url) == one


def test_seed_command_builds_a_clinic(tmp_path):
    from django.core.management import call_command

    from clinic.models import Patient
    from lesions.models import Capture, Lesion

    call_command("seed_large_clinic", patients=30, lesions=60, captures=400, images=2, data=tmp_path)
    assert Patient.objects.count() == 30 and Lesion.objects.count() == 60 and Capture.objects.count() == 400
    assert Analysis.objects.filter(status="done").count() == 400


@pytest.mark.parametrize("find", [patient_for, lesion_for, case_lesion_for, capture_for, analysis_for],
                         ids=lambda f: f.__name__)
def test_a_records_clinic_check_is_part_of_its_query(clinician, other_clinic_clinician, lesion, find,
                                                     django_assert_num_queries):
    """Every case, patient and image request checks its record's clinic: with the clinician's
    memberships as a subquery, the check and the record are one query, and another clinic's
    member still gets a 404."""
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    record = {patient_for: lesion.patient, lesion_for: lesion, case_lesion_for: lesion, capture_for: capture,
              analysis_for: capture.analyses.get()}[find]
    with django_assert_num_queries(1):
        assert find(clinician, record.pk) == record
    with django_assert_num_queries(1), pytest.raises(Http404):
        find(other_clinic_clinician, record.pk)
