from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils import html

from clinic.api.fields import StrictIntegerField, StrictModelSerializer
from lesions.forms import CaptureMetadataForm
from lesions.models import Analysis, Capture, Histopathology, Lesion
from lesions.presentation import lesion_stage_note

ABCD_KEYS = ("asymmetry", "border", "colours", "diameter", "tds", "change")


class LesionSerializer(StrictModelSerializer):
    class Meta:
        model = Lesion
        fields = ["id", "patient", "label", "body_site", "status", "notes", "clinical_diagnosis", "decision",
                  "assessed_at", "created_at", "updated_at"]
        read_only_fields = ["id", "patient", "assessed_at", "created_at", "updated_at"]


class AnalysisSerializer(StrictModelSerializer):
    melanoma_probability = serializers.FloatField(source="probability", read_only=True, allow_null=True,
                                                  help_text="The classifier's score, 0–1; decision support only.")
    threshold = serializers.FloatField(read_only=True, allow_null=True,
                                       help_text="The model version's operating point: scores at or above it "
                                                 "are flagged.")
    abcd = serializers.SerializerMethodField(help_text="Automatic ABCD features (asymmetry, border, colours, "
                                                       "diameter), the TDS and the change since the previous "
                                                       "capture, as stored by the analysis.")
    note = serializers.CharField(source="stage_note", read_only=True)

    class Meta:
        model = Analysis
        fields = ["id", "capture", "status", "error", "model_version", "melanoma_probability", "threshold", "abcd",
                  "note", "queued_at", "started_at", "finished_at"]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": {}, "nullable": True})
    def get_abcd(self, analysis: Analysis) -> dict | None:
        if analysis.status != Analysis.Status.DONE or not analysis.features:
            return None
        return {key: analysis.features.get(key) for key in ABCD_KEYS if key in analysis.features}


class CaptureSerializer(StrictModelSerializer):
    latest_analysis = serializers.SerializerMethodField()

    class Meta:
        model = Capture
        fields = ["id", "lesion", "width", "height", "sha256", "original_filename", "modality", "source", "device",
                  "mm_per_pixel", "structures", "taken_at", "created_at", "latest_analysis"]
        read_only_fields = fields

    @extend_schema_field(AnalysisSerializer(allow_null=True))
    def get_latest_analysis(self, capture: Capture) -> dict | None:
        newest_first = list(capture.analyses.all())  # Analysis.Meta.ordering; prefetched in lists
        analysis = newest_first[0] if newest_first else None
        return AnalysisSerializer(analysis).data if analysis else None


def _form_bound(name: str, attribute: str) -> float:
    """Bounds come from the web form's fields, so the API and the page accept the same values."""
    return getattr(CaptureMetadataForm.base_fields[name], attribute)


class SentMeansValid:
    """A multipart field sent empty is refused, not taken as left out (DRF's form default):
    the schema says what a sent value must be."""

    def get_value(self, dictionary):
        if html.is_html_input(dictionary) and dictionary.get(self.field_name) == "":
            return ""
        return super().get_value(dictionary)


class OptionalFloat(SentMeansValid, serializers.FloatField):
    pass


class OptionalDateTime(SentMeansValid, serializers.DateTimeField):
    pass


class CaptureUploadSerializer(serializers.Serializer):
    """Multipart upload: the image and the same metadata as the web form."""

    image = serializers.FileField(help_text="JPEG or PNG; checked by content, re-encoded without metadata.")
    modality = serializers.ChoiceField(choices=Capture.Modality.choices, default=Capture.Modality.DERMOSCOPIC)
    device = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    # Optional fields are left out rather than sent empty (the schema's types hold for what is sent).
    mm_per_pixel = OptionalFloat(required=False, default=None,
                                          min_value=_form_bound("mm_per_pixel", "min_value"),
                                          max_value=_form_bound("mm_per_pixel", "max_value"),
                                          help_text="Pixel spacing in mm per pixel, when the device knows it.")
    field_of_view_mm = OptionalFloat(required=False, default=None,
                                              min_value=_form_bound("field_of_view_mm", "min_value"),
                                              max_value=_form_bound("field_of_view_mm", "max_value"),
                                              help_text="…or the field of view across the image, in mm.")
    taken_at = OptionalDateTime(required=False, default=None,
                                         help_text="When the picture was taken (default: when it arrives).")

    def validate(self, attrs: dict) -> dict:
        # The web form's own checks on the metadata (finite numbers, bounds, choices).
        form = CaptureMetadataForm(data={k: "" if attrs[k] is None else attrs[k]
                                         for k in ("modality", "device", "mm_per_pixel", "field_of_view_mm")})
        if not form.is_valid():
            raise serializers.ValidationError({field: list(messages) for field, messages in form.errors.items()})
        return {**attrs, **form.cleaned_data}


# PostgreSQL's integer range, stated here so that the schema does not depend on the database.
INTEGER_MAX = 2_147_483_647


class HistopathologySerializer(StrictModelSerializer):
    mitotic_rate_per_mm2 = StrictIntegerField(min_value=0, max_value=INTEGER_MAX, allow_null=True,
                                                    required=False, label="Mitotic rate (/mm²)")
    stage_note = serializers.SerializerMethodField(help_text="The lesion's note from this report (AJCC 8th "
                                                             "edition stage where complete).")

    class Meta:
        model = Histopathology
        fields = ["lesion", "primary_tumour", "in_situ", "breslow_mm", "ulceration", "mitotic_rate_per_mm2",
                  "sentinel_node", "n_category", "m_category", "ldh", "recorded_at", "stage_note"]
        read_only_fields = ["lesion", "recorded_at", "stage_note"]

    @extend_schema_field(OpenApiTypes.STR)
    def get_stage_note(self, histopathology: Histopathology) -> str:
        return lesion_stage_note(histopathology.lesion)
