"""Patients over the REST API: the same selectors, services and audit rows as the pages."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clinic import audit, selectors, services
from clinic.api.base import ApiPagination, TokenApiMixin
from clinic.api.serializers import PatientSearchSerializer, PatientSerializer
from clinic.models import AuditEvent, Patient


class PatientSearchPagination(ApiPagination):
    """Paging over a search as the patient list page pages over it: counted up to the cap
    (selectors.SEARCH_MATCH_CAP), the first `cap` matches by name listed, `count_capped` saying that
    more matched. Counting every match of a common name grew with the clinic. The list without `q`
    (a records system's sync) keeps its exact count and every patient."""

    def paginate_queryset(self, queryset: QuerySet[Patient], request: Request, view: APIView | None = None
                          ) -> list[Patient]:
        self.search: selectors.PatientSearch | None = getattr(view, "search", None)
        rows = super().paginate_queryset(queryset, request, view)
        return rows[: max(self.count - self.offset, 0)]

    def get_count(self, queryset: QuerySet[Patient]) -> int:
        return super().get_count(queryset) if self.search is None else self.search.listed

    def get_paginated_response(self, data: list[dict]) -> Response:
        response = super().get_paginated_response(data)
        response.data["count_capped"] = self.search is not None and self.search.more
        return response

    def get_paginated_response_schema(self, schema: dict) -> dict:
        paginated = super().get_paginated_response_schema(schema)
        paginated["required"].append("count_capped")
        paginated["properties"]["count"]["description"] = (
            f"How many patients there are; for a search (`q`), how many match, counted no further than "
            f"{selectors.SEARCH_MATCH_CAP} (see `count_capped`).")
        paginated["properties"]["count_capped"] = {
            "type": "boolean",
            "description": f"More than `count` patients match the search: only the first {selectors.SEARCH_MATCH_CAP} "
                           "by name are listed; narrow the search (a first name, an identifier).",
        }
        return paginated


class PatientList(TokenApiMixin, generics.ListCreateAPIView):
    """The token's clinic's patients (search with `q`), or a new patient in that clinic."""

    serializer_class = PatientSerializer
    pagination_class = PatientSearchPagination

    def get_queryset(self):
        params = PatientSearchSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        self.query = params.validated_data.get("q", "").strip()
        self.search = selectors.patient_search(self.request.user, self.query) if self.query else None
        return self.search.patients if self.search else selectors.patients_for(self.request.user)

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "clinic_id": getattr(self.request.auth, "clinic_id", None)}

    @extend_schema(parameters=[PatientSearchSerializer])
    def get(self, request: Request, *args, **kwargs) -> Response:
        response = super().get(request, *args, **kwargs)
        # Each page of a search is audited: over the API every request is a read of names (the page
        # audits the posted search once, and its pages are read under that search's token).
        if self.search is not None:
            audit.record_search(request=request, user=request.user, clinic_id=request.auth.clinic_id,
                                query=self.query, listed=self.search.listed, capped=self.search.more)
        return response

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
