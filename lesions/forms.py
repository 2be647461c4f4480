from __future__ import annotations

from django import forms

from lesions import body_map
from lesions.models import Capture, Histopathology, Lesion
from lesions.recalls import INTERVAL_CHOICES

# The D of Stolz's ABCD rule: differential structures the clinician sees.
DERMOSCOPIC_STRUCTURES = [
    ("pigment_network", "Pigment network"),
    ("structureless", "Structureless (homogeneous) areas"),
    ("dots", "Dots"),
    ("globules", "Globules"),
    ("streaks", "Streaks"),
]


class LesionForm(forms.ModelForm):
    """The body map (static/js/bodymap.js) fills the three hidden fields and the body site; the
    select list stays for keyboard users. A point given, the site is derived from the point's
    region, so the two always agree."""

    class Meta:
        model = Lesion
        fields = ["label", "body_site", "status", "notes", "body_map_view", "body_map_x", "body_map_y"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3}),
                   "body_map_view": forms.HiddenInput, "body_map_x": forms.HiddenInput,
                   "body_map_y": forms.HiddenInput}

    def clean(self):
        cleaned = super().clean()
        view, x, y = cleaned.get("body_map_view"), cleaned.get("body_map_x"), cleaned.get("body_map_y")
        given = [v not in (None, "") for v in (view, x, y)]
        if any(given) and not all(given):
            raise forms.ValidationError("The body-map point is incomplete; click the figure again.")
        if all(given):
            if not (0 <= x <= 1 and 0 <= y <= 1):
                raise forms.ValidationError("The body-map point lies outside the figure.")
            region = body_map.region_at(view, x, y)
            if region is None:
                raise forms.ValidationError("That point is not on the body; click on the figure.")
            cleaned["body_site"] = region.site
        return cleaned


class AssessmentForm(forms.ModelForm):
    follow_up = forms.ChoiceField(
        label="Follow-up interval", choices=[("", "—"), *INTERVAL_CHOICES], required=False,
        help_text="With the decision “monitor”: sets the next review unless you enter a date.")

    class Meta:
        model = Lesion
        fields = ["clinical_diagnosis", "decision", "follow_up", "next_review_date", "status"]
        widgets = {"next_review_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")}


class HistopathologyForm(forms.ModelForm):
    class Meta:
        model = Histopathology
        fields = ["in_situ", "breslow_mm", "ulceration", "mitotic_rate_per_mm2", "sentinel_node",
                  "n_category", "m_category"]

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("in_situ") and cleaned.get("breslow_mm") is None:
            self.add_error("breslow_mm", "Breslow thickness is needed unless the melanoma is in situ.")
        return cleaned


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    """Several files in one field; each is checked by content in the service, not here."""

    def __init__(self, *args, **kwargs) -> None:
        # On a phone the picker opens the rear camera (a clip-on dermoscope sits there); the content
        # check in lesions/images.py still accepts JPEG and PNG only.
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*", "capture": "environment"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(d, initial) for d in data]
        return [single(data, initial)]


class CaptureMetadataForm(forms.Form):
    modality = forms.ChoiceField(choices=Capture.Modality.choices, initial=Capture.Modality.DERMOSCOPIC)
    device = forms.CharField(max_length=120, required=False)
    mm_per_pixel = forms.FloatField(label="Pixel spacing (mm per pixel)", required=False, min_value=0.0001,
                                    max_value=10)
    field_of_view_mm = forms.FloatField(label="…or field of view width (mm)", required=False, min_value=1,
                                        max_value=500, help_text="The dermoscope's field of view across the image.")


class CaptureUploadForm(CaptureMetadataForm):
    images = MultipleImageField(label="Images (JPEG or PNG, several allowed)")


class StructuresForm(forms.Form):
    structures = forms.MultipleChoiceField(choices=DERMOSCOPIC_STRUCTURES, required=False,
                                           widget=forms.CheckboxSelectMultiple)
