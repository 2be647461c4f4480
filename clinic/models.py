"""Clinics, the clinicians who belong to them, their patients, and the audit trail."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Clinic(models.Model):
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DataGeneration(models.Model):
    """How many committed writes have changed a clinic's clinical records: the clinic row itself
    (its name), patients, and on the lesions side lesions, captures, analyses and histopathology.
    Pages derived from those records (the worklist, the case and patient pages, patient searches:
    clinic.page_cache) are cached under the clinic's generation, the sum over its rows, so any
    change is a new key and nothing cached can be stale.

    Written only by PostgreSQL triggers (migrations clinic 0006, 0007 and 0009, lesions 0009 and
    0010), for every INSERT, UPDATE and DELETE statement, whoever runs it: the ORM, QuerySet.update(),
    the admin, COPY, psql. A transaction adds to a slot row that no other open transaction holds: it
    tries a transaction advisory lock on (clinic, slot) from its backend id modulo SLOTS onwards
    and takes the first it gets, so counting never makes a writer wait on, or deadlock with,
    another writer (only when all SLOTS are held elsewhere does it wait). clinic.selectors
    caches nothing unless every trigger of TRIGGERED_TABLES is in place and enabled.

    Rows are never deleted. No foreign key to the clinic: a counter write then takes no lock on
    the clinic row. A clinic can be deleted only once it has no patients (Patient.clinic is
    PROTECT); its rows here stay behind, a few unused integers."""

    SLOTS = 64
    # Advisory lock keys (clinic 0007): this namespace in the top 16 bits of the bigint key.
    ADVISORY_LOCK_NAMESPACE = 0x4C47
    # Each has INSERT, UPDATE and DELETE triggers named {table}_inserted, _updated, _deleted.
    TRIGGERED_TABLES = ("clinic_clinic", "clinic_patient", "lesions_lesion", "lesions_histopathology",
                        "lesions_capture", "lesions_analysis")

    clinic_id = models.BigIntegerField()
    slot = models.SmallIntegerField()
    generation = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["clinic_id", "slot"], name="one_generation_per_clinic_slot")]

    def __str__(self) -> str:
        return f"Clinic {self.clinic_id} slot {self.slot}: {self.generation}"


class Membership(models.Model):
    """A clinician's place in a clinic; a clinician may belong to several clinics."""

    class Role(models.TextChoices):
        CLINICIAN = "clinician", "Clinician"
        LEAD = "lead", "Clinic lead"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.CLINICIAN)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "clinic"], name="one_membership_per_clinic")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.clinic}"


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Unknown"

    class SkinType(models.TextChoices):
        """Fitzpatrick skin phototype."""

        I = "I", "I – always burns, never tans"  # noqa: E741
        II = "II", "II – usually burns, tans minimally"
        III = "III", "III – sometimes burns, tans uniformly"
        IV = "IV", "IV – burns minimally, always tans"
        V = "V", "V – very rarely burns, tans profusely"
        VI = "VI", "VI – never burns"

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="patients")
    identifier = models.CharField("MRN / identifier", max_length=64)
    name = models.CharField(max_length=200)
    date_of_birth = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    skin_type = models.CharField("Fitzpatrick skin type", max_length=3, choices=SkinType.choices, blank=True)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                   blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "identifier"], name="identifier_unique_per_clinic"),
        ]
        indexes = [
            models.Index(fields=["clinic", "name", "id"], name="patient_clinic_name"),
            models.Index(fields=["clinic", "-updated_at"], name="patient_clinic_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.identifier})"


class AppendOnlyQuerySet(models.QuerySet):
    """Bulk update and delete are refused here; on PostgreSQL a trigger refuses them for any
    client (migration clinic 0003), so not even a superuser's shell can rewrite the trail."""

    def update(self, **kwargs):
        raise PermissionError("audit events are append-only")

    def delete(self):
        raise PermissionError("audit events are append-only")

    def _raw_delete(self, using):
        raise PermissionError("audit events are append-only")


class AuditEvent(models.Model):
    """Who viewed, created, changed, deleted, downloaded or searched, logged in or out, when and
    from where.

    Rows are written in the same transaction as the change they record and are never
    edited nor deleted: the admin offers them read-only to everyone, save() refuses updates,
    delete() refuses, and on PostgreSQL a trigger refuses UPDATE and DELETE.
    """

    class Action(models.TextChoices):
        VIEW = "view", "Viewed"
        CREATE = "create", "Created"
        CHANGE = "change", "Changed"
        DELETE = "delete", "Deleted"
        DOWNLOAD = "download", "Downloaded image"
        LOGIN = "login", "Logged in"
        LOGOUT = "logout", "Logged out"
        LOGIN_FAILED = "login_failed", "Failed login"
        SEARCH = "search", "Searched"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    # No database constraint and no cascade: deleting a user must not touch (or be blocked by)
    # the rows that record what they did; username keeps the name.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, null=True, blank=True,
                             related_name="+", db_constraint=False)
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    object_type = models.CharField(max_length=40)
    object_id = models.CharField(max_length=40)
    object_repr = models.CharField(max_length=200, blank=True)
    clinic_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object")]

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit events are append-only")

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.username} {self.action} {self.object_type} {self.object_id}"


class ApiToken(models.Model):
    """A bearer token for the REST API, bound to one clinic and acting as one user account
    (a clinician, or an account made for a device such as a dermoscope).

    Only a SHA-256 hash of the secret is stored: the plaintext is shown once, when the token
    is created in the admin, and cannot be recovered. The prefix (not secret) finds the row
    and names the token in logs and audit rows. A revoked token is kept for the audit trail.
    """

    name = models.CharField(max_length=120, help_text="What uses it, e.g. 'Dermoscope room 2' or 'EHR bridge'")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="api_tokens")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens",
                             help_text="The account the token acts as; it must belong to the clinic.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField("SHA-256 of the token", max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+", editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["clinic", "name", "id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
