"""Lesions, captures, analyses and histopathology over the REST API.

Reads go through the same scoped selectors as the pages (another clinic's record is a 404),
writes through the same services (captures: lesions.services.capture_create, the web form's
validation and cleaning), and each view or change leaves the same audit row as its page.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from clinic import audit
from clinic.api.base import TokenApiMixin
from clinic.api.throttling import TokenRateThrottle, TokenUploadThrottle
from clinic.models import AuditEvent
from clinic.selectors import patient_for
from lesions import selectors, services
from lesions.api.serializers import (
    AnalysisSerializer,
    CaptureSerializer,
    CaptureUploadSerializer,
    HistopathologySerializer,
    LesionSerializer,
)
from lesions.forms import HistopathologyForm
from lesions.models import Analysis, Capture, Histopathology, Lesion
from lesions.views import dicom_export, dicom_file_name, dicom_response

ASSESSMENT_FIELDS = ("clinical_diagnosis", "decision")


def _viewed(request: Request, obj, clinic_id: int, **detail) -> None:
    audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=obj, clinic_id=clinic_id,
                 detail=detail or None)


def _changed_fields(instance, values: dict) -> list[str]:
    return [name for name, value in values.items() if getattr(instance, name) != value]


class PatientLesions(TokenApiMixin, generics.ListCreateAPIView):
    """A patient's lesions, or a new lesion of that patient."""

    serializer_class = LesionSerializer

    def get_queryset(self):
        patient = patient_for(self.request.user, self.kwargs["pk"])
        if self.request.method == "GET":
            _viewed(self.request, patient, patient.clinic_id)  # as the patient page, which lists them
        return patient.lesions.order_by("label", "id")

    def perform_create(self, serializer: LesionSerializer) -> None:
        patient = patient_for(self.request.user, self.kwargs["pk"])
        data = dict(serializer.validated_data)
        assessment = {name: data.pop(name) for name in ASSESSMENT_FIELDS if name in data}
        lesion = services.lesion_create(request=self.request, user=self.request.user, patient=patient, data=data)
        if any(assessment.values()):
            for name, value in assessment.items():
                setattr(lesion, name, value)
            lesion = services.lesion_update(request=self.request, user=self.request.user, lesion=lesion,
                                            changed=list(assessment))
        serializer.instance = lesion


class LesionDetail(TokenApiMixin, generics.RetrieveUpdateAPIView):
    serializer_class = LesionSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self) -> Lesion:
        return selectors.lesion_for(self.request.user, self.kwargs["pk"])

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        lesion = self.get_object()
        _viewed(request, lesion, lesion.patient.clinic_id)
        return Response(self.get_serializer(lesion).data)

    def perform_update(self, serializer: LesionSerializer) -> None:
        lesion = serializer.instance
        changed = _changed_fields(lesion, serializer.validated_data)
        for name, value in serializer.validated_data.items():
            setattr(lesion, name, value)
        services.lesion_update(request=self.request, user=self.request.user, lesion=lesion, changed=changed)


class LesionCaptures(TokenApiMixin, generics.ListCreateAPIView):
    """A lesion's captures in time order, or a new capture (multipart upload) queued for analysis."""

    serializer_class = CaptureSerializer
    parser_classes = [MultiPartParser]

    def get_throttles(self):
        throttles = super().get_throttles()
        return [*throttles, TokenUploadThrottle()] if self.request.method == "POST" else throttles

    def get_queryset(self):
        lesion = selectors.lesion_for(self.request.user, self.kwargs["pk"])
        _viewed(self.request, lesion, lesion.patient.clinic_id)  # as the case page, which lists them
        return (lesion.captures.order_by("taken_at", "id")
                .prefetch_related(Prefetch("analyses", queryset=Analysis.objects.order_by("-queued_at", "-id"))))

    @extend_schema(request=CaptureUploadSerializer, responses={201: CaptureSerializer})
    def post(self, request: Request, *args, **kwargs) -> Response:
        lesion = selectors.lesion_for(request.user, self.kwargs["pk"])
        upload = CaptureUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        image = data["image"]
        try:
            capture = services.capture_create(
                request=request, user=request.user, lesion=lesion, data=image.read(), filename=image.name or "",
                modality=data["modality"], source=Capture.Source.UPLOAD, device=data["device"],
                mm_per_pixel=data["mm_per_pixel"], field_of_view_mm=data["field_of_view_mm"],
                taken_at=data["taken_at"])
        except DjangoValidationError as exc:
            raise ValidationError({"image": exc.messages}) from None
        return Response(CaptureSerializer(capture).data, status=status.HTTP_201_CREATED)


class CaptureDetail(TokenApiMixin, generics.RetrieveAPIView):
    serializer_class = CaptureSerializer

    def get_object(self) -> Capture:
        return selectors.capture_for(self.request.user, self.kwargs["pk"])

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        capture = self.get_object()
        _viewed(request, capture, capture.lesion.patient.clinic_id)
        return Response(self.get_serializer(capture).data)


class CaptureAnalyses(TokenApiMixin, generics.ListAPIView):
    """Every analysis of a capture (one per model version), newest first."""

    serializer_class = AnalysisSerializer

    def get_queryset(self):
        capture = selectors.capture_for(self.request.user, self.kwargs["pk"])
        _viewed(self.request, capture, capture.lesion.patient.clinic_id)
        return capture.analyses.order_by("-queued_at", "-id")


class AnalysisDetail(TokenApiMixin, generics.RetrieveAPIView):
    """One analysis: status, melanoma probability against the model's threshold, ABCD, note."""

    serializer_class = AnalysisSerializer

    def get_object(self) -> Analysis:
        return selectors.analysis_for(self.request.user, self.kwargs["pk"])

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        analysis = self.get_object()
        _viewed(request, analysis, analysis.capture.lesion.patient.clinic_id)
        return Response(self.get_serializer(analysis).data)


class LesionHistopathology(TokenApiMixin, generics.GenericAPIView):
    """The lesion's pathology report fields (for AJCC staging): read, or record them whole."""

    serializer_class = HistopathologySerializer
    throttle_classes = [TokenRateThrottle]

    def get(self, request: Request, pk: int) -> Response:
        lesion = selectors.lesion_for(request.user, pk)
        histopathology = selectors.histopathology_of(lesion)
        if histopathology is None:
            raise NotFound("No histopathology recorded for this lesion.")
        _viewed(request, histopathology, lesion.patient.clinic_id)
        return Response(self.get_serializer(histopathology).data)

    @extend_schema(responses={200: HistopathologySerializer, 201: HistopathologySerializer})
    def put(self, request: Request, pk: int) -> Response:
        lesion = selectors.lesion_for(request.user, pk)
        existing = selectors.histopathology_of(lesion)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # A PUT replaces the report: fields left out take the model's defaults. The web form
        # checks the clinical rules (e.g. Breslow thickness unless in situ), here as there.
        instance = existing or Histopathology(lesion=lesion)
        values = {name: serializer.validated_data.get(name, Histopathology._meta.get_field(name).get_default())
                  for name in HistopathologyForm.Meta.fields}
        form = HistopathologyForm(data={k: "" if v is None else v for k, v in values.items()}, instance=instance)
        if not form.is_valid():
            raise ValidationError({field: list(messages) for field, messages in form.errors.items()})
        histopathology = services.histopathology_record(request=request, user=request.user,
                                                        histopathology=form.save(commit=False),
                                                        changed=form.changed_data)
        return Response(self.get_serializer(histopathology).data,
                        status=status.HTTP_200_OK if existing else status.HTTP_201_CREATED)


class CaptureDicom(TokenApiMixin, generics.GenericAPIView):
    """The capture as a DICOM file: a Dermoscopic Photography Image (Supplement 221) for dermoscopic
    captures, a VL Photographic Image otherwise; patient and study identifiers, body site code,
    acquisition time and pixel spacing where known."""

    image = "original"

    @extend_schema(responses={(200, "application/dicom"): OpenApiTypes.BINARY})
    def get(self, request: Request, pk: int) -> HttpResponse:
        capture = selectors.capture_for(request.user, pk)
        try:
            data = dicom_export(capture, self.image)
        except LookupError:  # lesions.dicom.NoOverlay
            raise NotFound("This capture has no finished analysis with an overlay yet.") from None
        except FileNotFoundError:
            raise NotFound("The stored image is missing.") from None
        audit.record(request=request, user=request.user, action=AuditEvent.Action.DOWNLOAD, obj=capture,
                     clinic_id=capture.lesion.patient.clinic_id, detail={"format": "dicom", "image": self.image})
        return dicom_response(data, dicom_file_name(capture, self.image))


class OverlayDicom(CaptureDicom):
    """The newest finished analysis's outline overlay as a DICOM Secondary Capture, derived from
    the capture and in the same study."""

    image = "overlay"
