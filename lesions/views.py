from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from clinic import audit
from clinic.models import AuditEvent
from clinic.selectors import patient_for
from lesions import selectors, services
from lesions.forms import (
    AssessmentForm,
    CaptureMetadataForm,
    CaptureUploadForm,
    HistopathologyForm,
    LesionForm,
    StructuresForm,
)
from lesions.models import Histopathology
from lesions.presentation import case_context, change_between, lesion_stage_note

IMAGE_KINDS = {"original", "thumbnail", "mask", "overlay", "heatmap"}


def lesion_create(request: HttpRequest, patient_pk: int) -> HttpResponse:
    patient = patient_for(request.user, patient_pk)
    form = LesionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        lesion = services.lesion_create(request=request, user=request.user, patient=patient, data=form.cleaned_data)
        messages.success(request, f"Lesion '{lesion.label}' added.")
        return redirect("lesion_case", pk=lesion.pk)
    return render(request, "lesions/lesion_form.html", {"form": form, "patient": patient})


def lesion_edit(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    form = LesionForm(request.POST or None, instance=lesion)
    if request.method == "POST" and form.is_valid():
        form.save(commit=False)
        services.lesion_update(request=request, user=request.user, lesion=lesion, changed=form.changed_data)
        messages.success(request, "Lesion updated.")
        return redirect("lesion_case", pk=lesion.pk)
    return render(request, "lesions/lesion_form.html", {"form": form, "patient": lesion.patient, "lesion": lesion})


def lesion_case(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=lesion,
                 clinic_id=lesion.patient.clinic_id)
    return render(request, "lesions/case.html", case_context(lesion))


def lesion_report(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=lesion,
                 clinic_id=lesion.patient.clinic_id, detail={"page": "report"})
    return render(request, "lesions/report.html", case_context(lesion))


@require_POST
def capture_upload(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    form = CaptureUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "lesions/case.html", case_context(lesion, upload_form=form), status=400)
    saved, errors = 0, []
    for upload in form.cleaned_data["images"]:
        try:
            services.capture_create(
                request=request, user=request.user, lesion=lesion, data=upload.read(), filename=upload.name,
                modality=form.cleaned_data["modality"], device=form.cleaned_data["device"],
                mm_per_pixel=form.cleaned_data["mm_per_pixel"],
                field_of_view_mm=form.cleaned_data["field_of_view_mm"])
            saved += 1
        except ValidationError as exc:
            errors.append(f"{upload.name}: {' '.join(exc.messages)}")
    if saved:
        messages.success(request, f"{saved} image{'s' if saved > 1 else ''} saved; analysis queued.")
    if errors:
        for error in errors:
            form.add_error("images", error)
        return render(request, "lesions/case.html", case_context(lesion, upload_form=form), status=400)
    return redirect("lesion_case", pk=lesion.pk)


@require_POST
def webcam_capture(request: HttpRequest, pk: int) -> JsonResponse:
    """The webcam page posts the still as a multipart blob (with the CSRF token header)."""
    lesion = selectors.lesion_for(request.user, pk)
    meta = CaptureMetadataForm(request.POST)
    upload = request.FILES.get("image")
    if upload is None:
        return JsonResponse({"ok": False, "error": "No image was received."}, status=400)
    if not meta.is_valid():
        return JsonResponse({"ok": False, "error": meta.errors.as_text()}, status=400)
    try:
        capture = services.capture_create(
            request=request, user=request.user, lesion=lesion, data=upload.read(), filename="webcam.png",
            modality=meta.cleaned_data["modality"], source="webcam", device=meta.cleaned_data["device"] or "webcam",
            mm_per_pixel=meta.cleaned_data["mm_per_pixel"], field_of_view_mm=meta.cleaned_data["field_of_view_mm"])
    except ValidationError as exc:
        return JsonResponse({"ok": False, "error": " ".join(exc.messages)}, status=400)
    return JsonResponse({"ok": True, "capture_id": capture.pk})


@require_POST
def capture_structures(request: HttpRequest, pk: int) -> HttpResponse:
    capture = selectors.capture_for(request.user, pk)
    form = StructuresForm(request.POST)
    if form.is_valid():
        services.capture_set_structures(request=request, user=request.user, capture=capture,
                                        structures=form.cleaned_data["structures"])
        messages.success(request, "Dermoscopic structures saved.")
    return redirect(f"{_case_url(capture.lesion_id)}#capture-{capture.pk}")


@require_POST
def lesion_assessment(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    form = AssessmentForm(request.POST, instance=lesion)
    if form.is_valid():
        form.save(commit=False)
        services.lesion_update(request=request, user=request.user, lesion=lesion, changed=form.changed_data)
        messages.success(request, "Assessment saved.")
        return redirect("lesion_case", pk=lesion.pk)
    return render(request, "lesions/case.html", case_context(lesion, assessment_form=form), status=400)


@require_POST
def lesion_histopathology(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    instance = selectors.histopathology_of(lesion) or Histopathology(lesion=lesion)
    form = HistopathologyForm(request.POST, instance=instance)
    if form.is_valid():
        services.histopathology_record(request=request, user=request.user, histopathology=form.save(commit=False),
                                       changed=form.changed_data)
        messages.success(request, "Histopathology saved. " + lesion_stage_note(lesion).splitlines()[0])
        return redirect("lesion_case", pk=lesion.pk)
    return render(request, "lesions/case.html", case_context(lesion, histopathology_form=form), status=400)


@require_GET
def lesion_statuses(request: HttpRequest, pk: int) -> JsonResponse:
    lesion = selectors.lesion_for(request.user, pk)
    return JsonResponse({"analyses": selectors.analysis_statuses(lesion)})


@require_GET
def capture_image(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    """Every image goes through here: login, clinic check and an audit row, then the bytes
    (local storage) or a short-lived presigned URL (S3). Nothing is publicly addressable."""
    if kind not in IMAGE_KINDS:
        raise Http404
    capture = selectors.capture_for(request.user, pk)
    if kind == "original" or (kind == "thumbnail" and not capture.thumbnail):
        name = capture.image.name
    elif kind == "thumbnail":
        name = capture.thumbnail.name
    else:
        analysis = selectors.current_analysis(capture)
        field = getattr(analysis, kind, None) if analysis and analysis.is_done else None
        if not field:
            raise Http404
        name = field.name
    audit.record(request=request, user=request.user, action=AuditEvent.Action.DOWNLOAD, obj=capture,
                 clinic_id=capture.lesion.patient.clinic_id, detail={"kind": kind})
    if settings.STORAGE_BACKEND == "s3":
        response: HttpResponse = HttpResponseRedirect(default_storage.url(name))
    else:
        try:
            response = FileResponse(default_storage.open(name, "rb"),
                                    content_type="image/png" if name.endswith(".png") else "image/jpeg")
        except FileNotFoundError:
            raise Http404 from None
    response["Cache-Control"] = "private, no-store"
    return response


def lesion_compare(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    context = case_context(lesion)
    rows = context["rows"]
    ids = [int(x) for x in (request.GET.get("a"), request.GET.get("b")) if x and x.isdigit()]
    chosen = [r for r in rows if r.capture.pk in ids]
    if len(chosen) != 2:
        chosen = rows[-2:]
    context["pair"] = chosen
    if len(chosen) == 2:
        context["pair_change"] = change_between(chosen[0], chosen[1])
    return render(request, "lesions/compare.html", context)


def _case_url(lesion_id: int) -> str:
    return reverse("lesion_case", args=[lesion_id])


def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The patient page: the patient's lesions, so it lives with the lesions."""
    patient = patient_for(request.user, pk)
    audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=patient,
                 clinic_id=patient.clinic_id)
    return render(request, "clinic/patient_detail.html",
                  {"patient": patient, "lesions": selectors.lesions_with_latest(patient)})
