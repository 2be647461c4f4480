"""Writes for clinics and patients, each with its audit row in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from clinic import audit, signals, tokens
from clinic.models import ApiToken, AuditEvent, Clinic, Membership, Patient


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


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plaintext: str  # shown once to whoever created it; only its hash is stored


def api_token_create(*, request: HttpRequest | None, created_by: Any, clinic: Clinic, user: Any,
                     name: str) -> IssuedToken:
    """Issue an API token acting as `user` in `clinic`; the user must belong to the clinic."""
    if not Membership.objects.filter(user=user, clinic=clinic).exists():
        raise ValidationError(f"{user} does not belong to {clinic}; add the membership first.")
    prefix, plaintext = tokens.generate()
    with transaction.atomic():
        token = ApiToken.objects.create(name=name, clinic=clinic, user=user, prefix=prefix,
                                        key_hash=tokens.hash_token(plaintext), created_by=created_by)
        audit.record(request=request, user=created_by, action=AuditEvent.Action.CREATE, obj=token,
                     clinic_id=clinic.id, detail={"acts_as": user.get_username()})
    return IssuedToken(token, plaintext)


def api_token_revoke(*, request: HttpRequest | None, revoked_by: Any, token: ApiToken) -> ApiToken:
    with transaction.atomic():
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit.record(request=request, user=revoked_by, action=AuditEvent.Action.CHANGE, obj=token,
                         clinic_id=token.clinic_id, detail={"revoked": True})
    return token
