from __future__ import annotations

import pytest
from django.urls import reverse

from clinic.models import AuditEvent, Patient
from tests.factories import MembershipFactory, PatientFactory

pytestmark = pytest.mark.django_db


def test_create_patient_records_an_audit_row(client_logged_in, clinic, clinician):
    response = client_logged_in.post(reverse("patient_create"), {
        "clinic": clinic.pk, "identifier": "MRN-9", "name": "Mary Anning", "date_of_birth": "1799-05-21",
        "sex": "female", "skin_type": "II", "notes": "family history of melanoma"})
    assert response.status_code == 302
    patient = Patient.objects.get(identifier="MRN-9")
    assert patient.clinic == clinic and patient.created_by == clinician
    event = AuditEvent.objects.get(action="create", object_type="Patient")
    assert event.user == clinician and event.object_id == str(patient.pk) and event.ip_address == "127.0.0.1"


def test_identifier_is_unique_per_clinic_only(client_logged_in, clinic, other_clinic, clinician):
    PatientFactory(clinic=clinic, identifier="DUP")
    PatientFactory(clinic=other_clinic, identifier="SAME-ELSEWHERE")
    response = client_logged_in.post(reverse("patient_create"), {
        "clinic": clinic.pk, "identifier": "DUP", "name": "X", "sex": "unknown"})
    assert response.status_code == 200
    assert "already exists in this clinic" in response.content.decode()
    response = client_logged_in.post(reverse("patient_create"), {
        "clinic": clinic.pk, "identifier": "SAME-ELSEWHERE", "name": "Y", "sex": "unknown"})
    assert response.status_code == 302


def test_cannot_create_a_patient_in_someone_elses_clinic(client_logged_in, other_clinic):
    response = client_logged_in.post(reverse("patient_create"), {
        "clinic": other_clinic.pk, "identifier": "X1", "name": "Intruder", "sex": "unknown"})
    assert response.status_code == 200
    assert not Patient.objects.filter(identifier="X1").exists()


def test_list_shows_only_own_clinics_and_searches(client_logged_in, clinic, other_clinic, clinician):
    PatientFactory(clinic=clinic, name="Alan Turing", identifier="T-1")
    PatientFactory(clinic=clinic, name="Ada Lovelace", identifier="L-2")
    PatientFactory(clinic=other_clinic, name="Alan Other", identifier="O-3")
    content = client_logged_in.get(reverse("patient_list")).content.decode()
    assert "Alan Turing" in content and "Ada Lovelace" in content and "Alan Other" not in content
    # Searches are posted (no names in URLs) and shown under a session token.
    content = client_logged_in.post(reverse("patient_list"), {"q": "alan"}, follow=True).content.decode()
    assert "Alan Turing" in content and "Ada Lovelace" not in content and "Alan Other" not in content
    content = client_logged_in.post(reverse("patient_list"), {"q": "L-2"}, follow=True).content.decode()
    assert "Ada Lovelace" in content and "Alan Turing" not in content


def test_clinician_of_two_clinics_sees_both(clinician, clinic, other_clinic, client_logged_in):
    MembershipFactory(user=clinician, clinic=other_clinic)
    PatientFactory(clinic=other_clinic, name="Second Clinic Patient")
    assert "Second Clinic Patient" in client_logged_in.get(reverse("patient_list")).content.decode()


def test_edit_and_view_are_audited(client_logged_in, patient, clinician):
    client_logged_in.get(reverse("patient_detail", args=[patient.pk]))
    response = client_logged_in.post(reverse("patient_edit", args=[patient.pk]), {
        "identifier": patient.identifier, "name": "Ada Changed", "sex": "female", "skin_type": "III"})
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.name == "Ada Changed"
    actions = list(AuditEvent.objects.filter(object_type="Patient").values_list("action", flat=True))
    assert sorted(actions) == ["change", "view"]
    change = AuditEvent.objects.get(action="change")
    assert set(change.detail["fields"]) == {"name", "sex", "skin_type"}


def test_audit_rows_are_append_only(patient, clinician):
    from clinic import audit

    event = audit.record(request=None, user=clinician, action="view", obj=patient, clinic_id=patient.clinic_id)
    event.action = "delete"
    with pytest.raises(ValueError):
        event.save()


def test_export_audit_command_writes_csv(patient, clinician, tmp_path):
    from django.core.management import call_command
    from django.utils import timezone

    from clinic import audit

    audit.record(request=None, user=clinician, action="view", obj=patient, clinic_id=patient.clinic_id)
    out = tmp_path / "audit.csv"
    today = timezone.localdate().isoformat()
    call_command("export_audit", "--from", today, "--to", today, "--output", str(out))
    lines = out.read_text().strip().splitlines()
    assert lines[0].startswith("at,username,action")
    assert len(lines) == 2 and "alice" in lines[1] and "Patient" in lines[1]


def test_admin_delete_removes_everything_and_files(admin_client, lesion, private_media,
                                                  django_capture_on_commit_callbacks):
    import os

    from lesions import services
    from tests.factories import lesion_image

    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    path = os.path.join(private_media, capture.image.name)
    assert os.path.exists(path)
    patient = lesion.patient
    url = reverse("admin:clinic_patient_changelist")
    response = admin_client.post(url, {"action": "delete_with_files", "_selected_action": [patient.pk]})
    assert response.status_code == 200 and b"delete permanently" in response.content  # confirmation first
    assert Patient.objects.filter(pk=patient.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):  # files go once the deletion commits
        response = admin_client.post(url, {"action": "delete_with_files", "_selected_action": [patient.pk],
                                           "confirm": "yes"})
    assert response.status_code == 302
    assert not Patient.objects.filter(pk=patient.pk).exists()
    assert not os.path.exists(path)
    assert AuditEvent.objects.filter(action="delete", object_type="Patient", object_id=str(patient.pk)).exists()


def test_the_patient_list_is_own_clinics_by_name_then_record_with_counts(clinician, clinic, other_clinic,
                                                                        django_assert_num_queries):
    from clinic import selectors
    from tests.factories import LesionFactory

    zed = PatientFactory(clinic=clinic, name="Zed Zulu")
    twin_a = PatientFactory(clinic=clinic, name="Ann Able")
    twin_b = PatientFactory(clinic=clinic, name="Ann Able")
    PatientFactory(clinic=other_clinic, name="Aaron Other")
    LesionFactory.create_batch(2, patient=twin_b)
    LesionFactory(patient=zed)
    # A later update moves twin_a's row version after twin_b's: only the explicit tie-break on the
    # record keeps two patients of the same name in a stable order across pages.
    Patient.objects.filter(pk=twin_a.pk).update(date_of_birth="1970-01-01")
    with django_assert_num_queries(3):  # the user's clinics, the patients with their clinic, the page's counts
        shown = selectors.with_lesion_counts(list(selectors.patients_for(clinician)))
        rows = [(p.pk, p.clinic.name, p.lesion_count) for p in shown]
    assert rows == [(twin_a.pk, clinic.name, 0), (twin_b.pk, clinic.name, 2), (zed.pk, clinic.name, 1)]
    assert list(selectors.patients_for(clinician, "  ")) == [twin_a, twin_b, zed]  # blank search: everyone


def test_clinic_ids_are_read_once_per_user_object(clinician, clinic, other_clinic, django_assert_num_queries):
    from clinic.selectors import clinic_ids_for

    # Pages call clinic_ids_for several times per request; the ids are kept on the request's user
    # object so that only the first call queries.
    MembershipFactory(user=clinician, clinic=other_clinic)
    with django_assert_num_queries(1):
        first = clinic_ids_for(clinician)
        second = clinic_ids_for(clinician)
    assert sorted(first) == sorted([clinic.pk, other_clinic.pk])
    assert second == first


def test_patient_for_reads_the_clinic_with_the_patient(clinician, patient, django_assert_num_queries):
    from clinic.selectors import clinic_ids_for, patient_for

    # The patient page shows the clinic's name: read in the same query, not one more.
    clinic_ids_for(clinician)
    with django_assert_num_queries(1):
        found = patient_for(clinician, patient.pk)
        assert found.clinic.name == patient.clinic.name
