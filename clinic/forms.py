from __future__ import annotations

from django import forms

from clinic.models import Clinic, Patient


class PatientForm(forms.ModelForm):
    clinic = forms.ModelChoiceField(queryset=Clinic.objects.none())

    class Meta:
        model = Patient
        fields = ["clinic", "identifier", "name", "date_of_birth", "sex", "skin_type", "notes"]
        widgets = {
            "date_of_birth": forms.DateInput(attrs={"type": "date"}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, clinics, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["clinic"].queryset = clinics
        if self.instance.pk:
            # A patient stays in its clinic; moving between clinics is an admin task.
            del self.fields["clinic"]
        elif clinics.count() == 1:
            self.fields["clinic"].initial = clinics.first()

    def clean(self):
        cleaned = super().clean()
        clinic = cleaned.get("clinic") or getattr(self.instance, "clinic", None)
        identifier = cleaned.get("identifier")
        if clinic and identifier:
            clash = Patient.objects.filter(clinic=clinic, identifier=identifier).exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("identifier", "A patient with this identifier already exists in this clinic.")
        return cleaned


class PatientSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search by name or identifier",
                        widget=forms.TextInput(attrs={"type": "search"}))
