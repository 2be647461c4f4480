from __future__ import annotations

from rest_framework import serializers

from clinic.api.fields import StrictCharField, StrictModelSerializer
from clinic.models import Patient


class PatientSerializer(StrictModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "identifier", "name", "date_of_birth", "sex", "skin_type", "notes", "created_at",
                  "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_identifier(self, value: str) -> str:
        # The same rule as the patient form: an identifier is unique within its clinic.
        clinic_id = self.instance.clinic_id if self.instance else self.context["clinic_id"]
        clash = Patient.objects.filter(clinic_id=clinic_id, identifier=value)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError("A patient with this identifier already exists in this clinic.")
        return value


class PatientSearchSerializer(serializers.Serializer):
    q = StrictCharField(required=False, allow_blank=True, max_length=200,
                              help_text="Start of the identifier, or part of the name.")
