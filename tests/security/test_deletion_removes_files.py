"""Deleting a lesion, a capture or an analysis (admin or service) removes its stored files once the
deletion commits; a deletion that rolls back keeps them. Checked on storage itself."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.test import Client
from django.urls import reverse

from clinic.models import AuditEvent
from lesions import services
from lesions.models import Analysis, Capture, Lesion
from tests.factories import MembershipFactory, UserFactory, lesion_image

pytestmark = [pytest.mark.security, pytest.mark.django_db]


def capture_with_all_files(lesion) -> tuple[Capture, list[str]]:
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    capture.thumbnail = default_storage.save("thumbnails/t.png", ContentFile(lesion_image(fmt="PNG")))
    capture.save(update_fields=["thumbnail"])
    analysis = capture.analyses.get()
    for kind in ("mask", "overlay", "heatmap"):
        setattr(analysis, kind, default_storage.save(f"analyses/{kind}.png", ContentFile(lesion_image(fmt="PNG"))))
    analysis.save()
    names = [capture.image.name, capture.thumbnail.name, analysis.mask.name, analysis.overlay.name,
             analysis.heatmap.name]
    assert all(default_storage.exists(n) for n in names)
    return capture, names


@pytest.fixture
def admin_of_clinic(lesion):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    MembershipFactory(user=user, clinic=lesion.patient.clinic)
    client = Client()
    client.force_login(user)
    return client


def test_admin_delete_of_a_lesion_removes_its_files(admin_of_clinic, lesion, django_capture_on_commit_callbacks):
    _, names = capture_with_all_files(lesion)
    _, more = capture_with_all_files(lesion)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_of_clinic.post(reverse("admin:lesions_lesion_delete", args=[lesion.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Lesion.objects.filter(pk=lesion.pk).exists()
    assert not any(default_storage.exists(n) for n in names + more)
    row = AuditEvent.objects.get(action="delete", object_type="Lesion", object_id=str(lesion.pk))
    assert row.detail["files_removed"] == 10


def test_admin_bulk_delete_of_captures_removes_their_files(admin_of_clinic, lesion,
                                                           django_capture_on_commit_callbacks):
    first, first_names = capture_with_all_files(lesion)
    kept, kept_names = capture_with_all_files(lesion)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_of_clinic.post(reverse("admin:lesions_capture_changelist"),
                                        {"action": "delete_selected", "_selected_action": [first.pk], "post": "yes"})
    assert response.status_code == 302
    assert not Capture.objects.filter(pk=first.pk).exists()
    assert not any(default_storage.exists(n) for n in first_names)
    assert all(default_storage.exists(n) for n in kept_names)


def test_admin_delete_of_a_capture_and_of_an_analysis(admin_of_clinic, lesion, django_capture_on_commit_callbacks):
    capture, names = capture_with_all_files(lesion)
    analysis = capture.analyses.get()
    with django_capture_on_commit_callbacks(execute=True):
        admin_of_clinic.post(reverse("admin:lesions_analysis_delete", args=[analysis.pk]), {"post": "yes"})
    assert not Analysis.objects.filter(pk=analysis.pk).exists()
    assert [default_storage.exists(n) for n in names] == [True, True, False, False, False]
    with django_capture_on_commit_callbacks(execute=True):
        admin_of_clinic.post(reverse("admin:lesions_capture_delete", args=[capture.pk]), {"post": "yes"})
    assert not any(default_storage.exists(n) for n in names)


def test_service_deletions_remove_files_and_a_rollback_keeps_them(lesion, clinician,
                                                                  django_capture_on_commit_callbacks):
    capture, names = capture_with_all_files(lesion)
    capture_pk = capture.pk
    with pytest.raises(RuntimeError), transaction.atomic():
        services.capture_delete(request=None, user=clinician, capture=capture)
        raise RuntimeError("the surrounding work failed")
    assert Capture.objects.filter(pk=capture_pk).exists() and all(default_storage.exists(n) for n in names)
    with django_capture_on_commit_callbacks(execute=True):
        services.lesion_delete(request=None, user=clinician, lesion=lesion)
    assert not any(default_storage.exists(n) for n in names)
