"""Lesions, their captures over time, the analyses of each capture, and histopathology."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from clinic.models import Patient
from lesions.storage_names import random_name


class BodySite(models.TextChoices):
    """Anatomical sites as in the ISIC archive's metadata (anatom_site_general)."""

    HEAD_NECK = "head/neck", "Head / neck"
    UPPER_EXTREMITY = "upper extremity", "Upper extremity"
    LOWER_EXTREMITY = "lower extremity", "Lower extremity"
    ANTERIOR_TORSO = "anterior torso", "Anterior torso"
    POSTERIOR_TORSO = "posterior torso", "Posterior torso"
    LATERAL_TORSO = "lateral torso", "Lateral torso"
    PALMS_SOLES = "palms/soles", "Palms / soles"
    ORAL_GENITAL = "oral/genital", "Oral / genital"
    NAIL = "nail", "Nail"
    UNKNOWN = "unknown", "Unknown"


class Lesion(models.Model):
    class Status(models.TextChoices):
        MONITORING = "monitoring", "Monitoring"
        EXCISED = "excised", "Excised"
        CLOSED = "closed", "Closed"

    class Decision(models.TextChoices):
        NONE = "", "Not yet assessed"
        REASSURE = "reassure", "Reassure"
        MONITOR = "monitor", "Monitor"
        BIOPSY = "biopsy", "Biopsy"
        EXCISE = "excise", "Excise"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="lesions")
    label = models.CharField(max_length=120, help_text="How the clinic refers to it, e.g. 'left shoulder mole'")
    body_site = models.CharField(max_length=20, choices=BodySite.choices, default=BodySite.UNKNOWN)
    notes = models.TextField("clinical notes", blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.MONITORING)
    clinical_diagnosis = models.CharField(max_length=200, blank=True)
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True, default="")
    assessed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    assessed_at = models.DateTimeField(null=True, blank=True)
    # Recall: when the lesion is next to be seen (set with the decision "monitor"; lesions/recalls.py).
    next_review_date = models.DateField("next review", null=True, blank=True)
    # Where the lesion sits on the body map: figure (front/back) and the point in that figure's
    # coordinates, each 0..1 across the figure's width and height (static/img/body-*.svg).
    body_map_view = models.CharField(max_length=5, choices=[("front", "Front"), ("back", "Back")], blank=True)
    body_map_x = models.FloatField(null=True, blank=True)
    body_map_y = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["patient", "label", "id"]
        indexes = [
            models.Index(fields=["patient", "status"], name="lesion_patient_status"),
            # Worklist: recalls due, and decisions waiting for histopathology.
            models.Index(fields=["next_review_date"], name="lesion_next_review",
                         condition=models.Q(next_review_date__isnull=False)),
            models.Index(fields=["decision"], name="lesion_decision_excision",
                         condition=models.Q(decision__in=["biopsy", "excise"])),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.get_body_site_display()})"


class Histopathology(models.Model):
    """The pathology report's fields used for AJCC 8th-edition staging."""

    class SentinelNode(models.TextChoices):
        NOT_DONE = "not_done", "Not performed"
        NEGATIVE = "negative", "Negative"
        POSITIVE = "positive", "Positive"

    class NCategory(models.TextChoices):
        N0 = "N0", "N0 – no regional nodal disease"
        N1A = "N1a", "N1a – 1 clinically occult node"
        N1B = "N1b", "N1b – 1 clinically detected node"
        N1C = "N1c", "N1c – in-transit/satellite/microsatellite, no nodes"
        N2A = "N2a", "N2a – 2–3 clinically occult nodes"
        N2B = "N2b", "N2b – 2–3 nodes, ≥1 clinically detected"
        N2C = "N2c", "N2c – 1 node plus in-transit/satellite"
        N3A = "N3a", "N3a – ≥4 clinically occult nodes"
        N3B = "N3b", "N3b – ≥4 nodes, ≥1 clinically detected, or matted"
        N3C = "N3c", "N3c – ≥2 nodes or matted, plus in-transit/satellite"

    class MCategory(models.TextChoices):
        M0 = "M0", "M0 – no distant metastasis"
        M1A = "M1a", "M1a – skin, soft tissue or non-regional node"
        M1B = "M1b", "M1b – lung"
        M1C = "M1c", "M1c – other visceral (non-CNS)"
        M1D = "M1d", "M1d – central nervous system"

    lesion = models.OneToOneField(Lesion, on_delete=models.CASCADE, related_name="histopathology")
    in_situ = models.BooleanField("melanoma in situ", default=False)
    breslow_mm = models.DecimalField("Breslow thickness (mm)", max_digits=5, decimal_places=2, null=True, blank=True)
    ulceration = models.BooleanField(default=False)
    mitotic_rate_per_mm2 = models.PositiveIntegerField("mitotic rate (/mm²)", null=True, blank=True)
    sentinel_node = models.CharField(max_length=10, choices=SentinelNode.choices, default=SentinelNode.NOT_DONE)
    n_category = models.CharField("N category", max_length=4, choices=NCategory.choices, default=NCategory.N0)
    m_category = models.CharField("M category", max_length=4, choices=MCategory.choices, default=MCategory.M0)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    recorded_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "histopathology"

    def __str__(self) -> str:
        return f"Histopathology of {self.lesion}"


def capture_upload_path(_instance: Capture, filename: str) -> str:
    """Django's upload_to hook (admin uploads): the same random names as lesions.services.capture_create,
    so the stored path reveals nothing about the patient or the original file name."""
    return f"captures/{random_name()}.{'png' if filename.lower().endswith('.png') else 'jpg'}"


class Capture(models.Model):
    class Modality(models.TextChoices):
        DERMOSCOPIC = "dermoscopic", "Dermoscopic"
        CLINICAL = "clinical", "Clinical close-up"

    class Source(models.TextChoices):
        UPLOAD = "upload", "File upload"
        WEBCAM = "webcam", "Webcam"

    lesion = models.ForeignKey(Lesion, on_delete=models.CASCADE, related_name="captures")
    image = models.FileField(upload_to=capture_upload_path, max_length=200)
    thumbnail = models.FileField(max_length=200, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    sha256 = models.CharField("SHA-256 of the uploaded bytes", max_length=64)
    original_filename = models.CharField(max_length=200, blank=True)
    modality = models.CharField(max_length=12, choices=Modality.choices, default=Modality.DERMOSCOPIC)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.UPLOAD)
    device = models.CharField(max_length=120, blank=True)
    mm_per_pixel = models.FloatField("pixel spacing (mm per pixel)", null=True, blank=True)
    # Dermoscopic structures ticked by the clinician: the D of Stolz's ABCD rule.
    structures = models.JSONField(default=list, blank=True)
    # Image-quality check at capture (ml/quality.py): {"issues": [{"code", "reason"}], "measures": {...}}.
    quality = models.JSONField(default=dict, blank=True)
    taken_at = models.DateTimeField(db_index=True)
    taken_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["taken_at", "id"]
        indexes = [models.Index(fields=["lesion", "taken_at"], name="capture_lesion_taken")]

    def __str__(self) -> str:
        return f"Capture {self.pk} of {self.lesion}"

    @property
    def quality_issues(self) -> list[dict]:
        """Blur and exposure issues found at capture (the framing ones come with the analysis)."""
        return list((self.quality or {}).get("issues", []))


# "The current analysis of a capture" is its newest queued analysis, whatever its status: a
# re-analysis that is still waiting replaces the old result on every page, download and status
# poll (lesions.selectors applies this order everywhere).
NEWEST_FIRST = ("-queued_at", "-id")


class Analysis(models.Model):
    """One model version's analysis of one capture. The row, not the broker, is the truth."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    PENDING = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.DONE, Status.FAILED)

    capture = models.ForeignKey(Capture, on_delete=models.CASCADE, related_name="analyses")
    model_version = models.CharField(max_length=80)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=120, blank=True)
    device = models.CharField(max_length=40, blank=True)
    segmenter_name = models.CharField(max_length=80, blank=True)
    classifier_name = models.CharField(max_length=80, blank=True)
    probability = models.FloatField("melanoma probability", null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    # The classifier's operating point when this analysis ran: threshold plus the test figures
    # measured at it (ml.contracts.OperatingPoint.as_dict()). The note quotes these, never the
    # figures of whichever model ships today.
    operating_point = models.JSONField(default=dict, blank=True)
    mask = models.FileField(upload_to="analyses/", max_length=200, blank=True)
    overlay = models.FileField(upload_to="analyses/", max_length=200, blank=True)
    heatmap = models.FileField(upload_to="analyses/", max_length=200, blank=True)
    features = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    stage_note = models.TextField(blank=True)
    # The classifier's image embedding (float32, L2-normalised, little-endian bytes): comparable
    # only between analyses of the same model version. Used to find similar confirmed cases.
    embedding = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        ordering = list(NEWEST_FIRST)
        verbose_name_plural = "analyses"
        constraints = [
            models.UniqueConstraint(fields=["capture", "model_version"], name="one_analysis_per_model_version"),
        ]
        indexes = [
            models.Index(fields=["status", "queued_at"], name="analysis_status_queued"),
            # Worklist: finished analyses by score, failed ones by time.
            models.Index(fields=["status", "-probability", "-id"], name="analysis_status_probability"),
            models.Index(fields=["capture", "-queued_at"], name="analysis_capture_newest"),
        ]

    def __str__(self) -> str:
        return f"Analysis {self.pk} of capture {self.capture_id} ({self.status})"

    @property
    def framing_issues(self) -> list[dict]:
        """Lesion cut by the border or too small, from this analysis's outline (ml/quality.py)."""
        return list(((self.features or {}).get("framing") or {}).get("issues", []))

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def is_pending(self) -> bool:
        return self.status in self.PENDING

    @property
    def is_done(self) -> bool:
        return self.status == self.Status.DONE

    @property
    def is_failed(self) -> bool:
        return self.status == self.Status.FAILED
