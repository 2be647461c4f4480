"""Lesions, their captures over time, the analyses of each capture, and histopathology."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from clinic.models import Patient
from lesions import staging
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
            # In the worklist's order (oldest decision first), so the page's rows are the index's
            # first entries without histopathology instead of a sort of every such decision.
            models.Index(fields=["assessed_at", "id"], name="lesion_excision_by_decided",
                         condition=models.Q(decision__in=["biopsy", "excise"])),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.get_body_site_display()})"


class Histopathology(models.Model):
    """The pathology report's fields used for AJCC 8th-edition staging (lesions/staging.py).

    N and M start as "not assessed": a category nobody assessed is never recorded as negative.
    """

    class PrimaryTumour(models.TextChoices):
        ASSESSED = staging.PRIMARY_ASSESSED, "Assessed (Breslow thickness, or in situ)"
        NOT_ASSESSABLE = staging.PRIMARY_NOT_ASSESSABLE, "TX – thickness cannot be assessed (e.g. curettage)"
        UNKNOWN = staging.PRIMARY_UNKNOWN, "T0 – no evidence of a primary tumour (unknown primary)"

    class Ldh(models.TextChoices):
        NOT_RECORDED = staging.LDH_NOT_RECORDED, "Not recorded"
        NORMAL = staging.LDH_NORMAL, "Not elevated – suffix (0)"
        ELEVATED = staging.LDH_ELEVATED, "Elevated – suffix (1)"

    class SentinelNode(models.TextChoices):
        NOT_DONE = "not_done", "Not performed"
        NEGATIVE = "negative", "Negative"
        POSITIVE = "positive", "Positive"

    class NCategory(models.TextChoices):
        NOT_ASSESSED = "", "Not assessed"
        N0 = "N0", "N0 – no regional nodal disease"
        N1A = "N1a", "N1a – 1 clinically occult node (found by sentinel node biopsy)"
        N1B = "N1b", "N1b – 1 clinically detected node"
        N1C = "N1c", "N1c – in-transit/satellite/microsatellite, no nodes"
        N2A = "N2a", "N2a – 2–3 clinically occult nodes (found by sentinel node biopsy)"
        N2B = "N2b", "N2b – 2–3 nodes, ≥1 clinically detected"
        N2C = "N2c", "N2c – 1 node plus in-transit/satellite"
        N3A = "N3a", "N3a – ≥4 clinically occult nodes (found by sentinel node biopsy)"
        N3B = "N3b", "N3b – ≥4 nodes, ≥1 clinically detected, or matted"
        N3C = "N3c", "N3c – ≥2 nodes or matted, plus in-transit/satellite"

    class MCategory(models.TextChoices):
        NOT_ASSESSED = "", "Not assessed"
        M0 = "M0", "M0 – no distant metastasis"
        M1A = "M1a", "M1a – skin, soft tissue (incl. muscle) or non-regional node"
        M1B = "M1b", "M1b – lung"
        M1C = "M1c", "M1c – other visceral sites (not central nervous system)"
        M1D = "M1d", "M1d – central nervous system"

    lesion = models.OneToOneField(Lesion, on_delete=models.CASCADE, related_name="histopathology")
    primary_tumour = models.CharField("primary tumour", max_length=2, choices=PrimaryTumour.choices, blank=True,
                                      default=PrimaryTumour.ASSESSED)
    in_situ = models.BooleanField("melanoma in situ", default=False)
    breslow_mm = models.DecimalField("Breslow thickness (mm)", max_digits=5, decimal_places=2, null=True, blank=True)
    ulceration = models.BooleanField(default=False)
    mitotic_rate_per_mm2 = models.PositiveIntegerField("mitotic rate (/mm²)", null=True, blank=True)
    sentinel_node = models.CharField(max_length=10, choices=SentinelNode.choices, default=SentinelNode.NOT_DONE)
    n_category = models.CharField("N category", max_length=4, choices=NCategory.choices, blank=True,
                                  default=NCategory.NOT_ASSESSED)
    m_category = models.CharField("M category", max_length=4, choices=MCategory.choices, blank=True,
                                  default=MCategory.NOT_ASSESSED)
    ldh = models.CharField("serum LDH (for M1)", max_length=8, choices=Ldh.choices, blank=True,
                           default=Ldh.NOT_RECORDED)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    recorded_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "histopathology"

    def __str__(self) -> str:
        return f"Histopathology of {self.lesion}"

    def clean(self) -> None:
        """Findings that cannot be true together are refused (AJCC 8th ed., Gershenwald et al. 2017, Table 1)."""
        errors: dict[str, str] = {}
        if self.primary_tumour != self.PrimaryTumour.ASSESSED:
            label = self.PrimaryTumour(self.primary_tumour).label
            if self.breslow_mm is not None:
                errors["breslow_mm"] = f"{label}: the thickness cannot be assessed, so leave it empty."
            if self.in_situ:
                errors["in_situ"] = f"{label} cannot also be melanoma in situ."
        elif not self.in_situ and self.breslow_mm is None:
            errors["breslow_mm"] = ("Breslow thickness is needed unless the melanoma is in situ "
                                    "(or choose TX when it cannot be assessed).")
        if (self.n_category in staging.NODES_FOUND_BY_SENTINEL_BIOPSY
                and self.sentinel_node != self.SentinelNode.POSITIVE):
            done = ("no sentinel node biopsy was done" if self.sentinel_node == self.SentinelNode.NOT_DONE
                    else "the sentinel node biopsy was negative")
            errors["n_category"] = (f"{self.n_category} means clinically occult nodes found by a positive sentinel "
                                    f"node biopsy, but {done}. Choose a clinically detected category (N1b, N2b, "
                                    "N3b) or correct the sentinel node result.")
        if errors:
            raise ValidationError(errors)


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
    # Why no thumbnail can be made (the stored image is missing or unreadable): the sweep skips these.
    thumbnail_error = models.CharField(max_length=200, blank=True)
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
    # The first step of the two-step algorithm: the ABCD rule (TDS) applies to melanocytic lesions only.
    melanocytic = models.BooleanField("melanocytic lesion", null=True, blank=True)
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
        # Stored, but not a plausible skin-lesion image (ml.plausibility): never scored,
        # never compared for growth; `error` holds the reason shown to the clinician.
        NOT_ANALYSABLE = "not_analysable", "Not analysable"

    PENDING = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.DONE, Status.FAILED, Status.NOT_ANALYSABLE)

    capture = models.ForeignKey(Capture, on_delete=models.CASCADE, related_name="analyses")
    model_version = models.CharField(max_length=80)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True, help_text="why it failed, or why the image is not analysable")
    # Queued, but the broker did not take the job (it was down): the next sweep pass enqueues it.
    awaiting_broker = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=120, blank=True)
    device = models.CharField(max_length=40, blank=True)
    segmenter_name = models.CharField(max_length=80, blank=True)
    classifier_name = models.CharField(max_length=80, blank=True)
    # The classifier's output; what it is called (score or probability) is decided in one place,
    # lesions.stage_note.score_name, from the model manifest's "calibrated".
    probability = models.FloatField("classifier output (a melanoma score unless the model is calibrated)",
                                    null=True, blank=True)
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

    @property
    def is_not_analysable(self) -> bool:
        return self.status == self.Status.NOT_ANALYSABLE
