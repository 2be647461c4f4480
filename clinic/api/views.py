"""Patients over the REST API: the same selectors, services and audit rows as the pages."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response

from clinic import audit, selectors, services
from clinic.api.base import TokenApiMixin
from clinic.api.serializers import PatientSearchSerializer, PatientSerializer
from clinic.models import AuditEvent, Patient


class PatientList(TokenApiMixin, generics.ListCreateAPIView):
    """The token's clinic's patients (search with `q`), or a new patient in that clinic."""

    serializer_class = PatientSerializer

    def get_queryset(self):
        search = PatientSearchSerializer(data=self.request.query_params)
        search.is_valid(raise_exception=True)
        return selectors.patients_for(self.request.user, search.validated_data.get("q", ""))

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "clinic_id": getattr(self.request.auth, "clinic_id", None)}

    @extend_schema(parameters=[PatientSearchSerializer])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def perform_create(self, serializer: PatientSerializer) -> None:
        serializer.instance = services.patient_create(request=self.request, user=self.request.user,
                                                      clinic=self.request.auth.clinic,
                                                      data=serializer.validated_data)


class PatientDetail(TokenApiMixin, generics.RetrieveUpdateAPIView):
    serializer_class = PatientSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self) -> Patient:
        return selectors.patient_for(self.request.user, self.kwargs["pk"])

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        patient = self.get_object()
        audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=patient,
                     clinic_id=patient.clinic_id)
        return Response(self.get_serializer(patient).data)

    def perform_update(self, serializer: PatientSerializer) -> None:
        patient = serializer.instance
        changed = [name for name, value in serializer.validated_data.items() if getattr(patient, name) != value]
        for name, value in serializer.validated_data.items():
            setattr(patient, name, value)
        services.patient_update(request=self.request, user=self.request.user, patient=patient, changed=changed)
