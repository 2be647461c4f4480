"""Writes for clinics and patients, each with its audit row in the same transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest

from clinic import audit, signals
from clinic.models import AuditEvent, Clinic, Membership, Patient


def patient_create(*, request: HttpRequest | None, user: Any, clinic: Clinic, data: dict[str, Any]) -> Patient:
    with transaction.atomic():
        patient = Patient.objects.create(clinic=clinic, created_by=user, **data)
        audit.record(request=request, user=user, action=AuditEvent.Action.CREATE, obj=patient, clinic_id=clinic.id)
    return patient


def patient_update(*, request: HttpRequest | None, user: Any, patient: Patient, changed: list[str]) -> Patient:
    with transaction.atomic():
        patient.save()
        audit.record(request=request, user=user, action=AuditEvent.Action.CHANGE, obj=patient,
                     clinic_id=patient.clinic_id, detail={"fields": changed})
    return patient


def patient_delete(*, request: HttpRequest | None, user: Any, patient: Patient) -> None:
    """Delete a patient with all lesions, captures, analyses and their stored files."""
    with transaction.atomic():
        paths = [name for _, names in signals.patient_deleting.send(sender=Patient, patient=patient) for name in names]
        audit.record(request=request, user=user, action=AuditEvent.Action.DELETE, obj=patient,
                     clinic_id=patient.clinic_id, detail={"files_removed": len(paths)})
        patient.delete()


def clinician_add(*, user: Any, clinic: Clinic, role: str = Membership.Role.CLINICIAN) -> Membership:
    membership, _ = Membership.objects.get_or_create(user=user, clinic=clinic, defaults={"role": role})
    return membership
