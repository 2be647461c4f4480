from __future__ import annotations

import csv
import functools
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET, require_POST

from clinic import audit
from clinic.csv_cells import safe_row
from clinic.middleware import idle_seconds, passive_request
from clinic.models import AuditEvent
from clinic.selectors import clinics_for, patient_for
from lesions import clinical_rules as rules
from lesions import recalls, selectors, services, uploads
from lesions.forms import (
    AssessmentForm,
    CaptureMetadataForm,
    CaptureUploadForm,
    HistopathologyForm,
    LesionForm,
    StructuresForm,
)
from lesions.presentation import (
    body_map_inputs,
    case_body_html,
    case_context,
    compare_context,
    patient_context,
    patient_lesions_html,
    worklist_html,
)

logger = logging.getLogger("lesions.views")
IMAGE_KINDS = {"original", "thumbnail", "mask", "overlay", "heatmap"}


def lesion_create(request: HttpRequest, patient_pk: int) -> HttpResponse:
    patient = patient_for(request.user, patient_pk)
    form = LesionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        lesion = services.lesion_create(request=request, user=request.user, patient=patient, data=form.cleaned_data)
        messages.success(request, f"Lesion '{lesion.label}' added.")
        return redirect("lesion_case", pk=lesion.pk)
    if request.method == "GET":
        audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=patient,
                     clinic_id=patient.clinic_id, detail={"page": "new lesion"})
    return render(request, "lesions/lesion_form.html", {"form": form, "patient": patient, **body_map_inputs(form)})


def lesion_edit(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    form = LesionForm(request.POST or None, instance=lesion)
    if request.method == "POST" and form.is_valid():
        form.save(commit=False)
        services.lesion_update(request=request, user=request.user, lesion=lesion, changed=form.changed_data)
        messages.success(request, "Lesion updated.")
        return redirect("lesion_case", pk=lesion.pk)
    if request.method == "GET":
        audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=lesion,
                     clinic_id=lesion.patient.clinic_id, detail={"page": "edit"})
    return render(request, "lesions/lesion_form.html",
                  {"form": form, "patient": lesion.patient, "lesion": lesion, **body_map_inputs(form)})


def lesion_case(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.case_lesion_for(request.user, pk)
    audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=lesion,
                 clinic_id=lesion.patient.clinic_id)
    return render(request, "lesions/case.html", {"lesion": lesion, "patient": lesion.patient,
                                                 "case_body_html": case_body_html(lesion, get_token(request))})


def lesion_report(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=lesion,
                 clinic_id=lesion.patient.clinic_id, detail={"page": "report"})
    return render(request, "lesions/report.html", case_context(lesion))


NOT_SAVED = "The image was not saved because of a server problem (storage or database); please try again."
QUEUE_DOWN = "analysis will start when the queue is back"


@require_POST
def capture_upload(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    form = CaptureUploadForm(request.POST, request.FILES)
    refusals = uploads.refusals_of(request)  # files refused while the request streamed in
    if uploads.whole_request_refused(request) or not form.is_valid():
        if refusals:
            form.errors.pop("images", None)
            for refusal in refusals:
                form.add_error("images", refusal)
        return render(request, "lesions/case.html", case_context(lesion, upload_form=form), status=400)
    saved, waiting, errors, server_failed = 0, 0, list(refusals), False
    for upload in form.cleaned_data["images"]:
        try:
            capture = services.capture_create(
                request=request, user=request.user, lesion=lesion, data=upload.read(), filename=upload.name,
                modality=form.cleaned_data["modality"], device=form.cleaned_data["device"],
                mm_per_pixel=form.cleaned_data["mm_per_pixel"],
                field_of_view_mm=form.cleaned_data["field_of_view_mm"])
            saved += 1
            waiting += capture.analysis_enqueued is False
        except ValidationError as exc:
            errors.append(f"{upload.name}: {' '.join(exc.messages)}")
        except services.CaptureNotSavedError:
            errors.append(f"{upload.name}: {NOT_SAVED}")
            server_failed = True
    if saved:
        plural = "s" if saved > 1 else ""
        if waiting:
            messages.warning(request, f"{saved} image{plural} saved; {QUEUE_DOWN}.")
        else:
            messages.success(request, f"{saved} image{plural} saved; analysis queued.")
    if errors:
        for error in errors:
            form.add_error("images", error)
        return render(request, "lesions/case.html", case_context(lesion, upload_form=form),
                      status=503 if server_failed else 400)
    return redirect(f"{_case_url(lesion.pk)}#captures")


def json_answers(view):
    """The webcam endpoint answers JSON whatever happens: its caller is a script that shows
    `error` to the clinician and keeps the picture for another try."""
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> JsonResponse:
        if not request.user.is_authenticated:
            return JsonResponse({"ok": False, "error": "Your session has ended. Log in again in another tab, "
                                 "then save the picture again."}, status=401)
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return JsonResponse({"ok": False, "error": "This lesion was not found."}, status=404)
        except Exception:
            logger.exception("webcam capture failed path=%s", request.path)
            return JsonResponse({"ok": False, "error": NOT_SAVED}, status=500)
    return login_not_required(wrapper)  # the wrapper checks the login itself, answering JSON


@json_answers
@require_POST
def webcam_capture(request: HttpRequest, pk: int) -> JsonResponse:
    """The webcam page posts the still as a multipart blob (with the CSRF token header)."""
    lesion = selectors.lesion_for(request.user, pk)
    meta = CaptureMetadataForm(request.POST)
    refusals = uploads.refusals_of(request)
    if refusals:
        return JsonResponse({"ok": False, "error": " ".join(refusals)}, status=400)
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
    except services.CaptureNotSavedError:
        return JsonResponse({"ok": False, "error": NOT_SAVED}, status=503)
    queued = capture.analysis_enqueued is not False
    if not queued:  # shown on the case page the script reloads
        messages.warning(request, f"Image saved; {QUEUE_DOWN}.")
    return JsonResponse({"ok": True, "capture_id": capture.pk, "analysis_queued": queued,
                         "message": f"Saved as capture {capture.pk}; "
                                    + ("analysis queued." if queued else f"{QUEUE_DOWN}.")})


@require_POST
def capture_structures(request: HttpRequest, pk: int) -> HttpResponse:
    capture = selectors.capture_for(request.user, pk)
    form = StructuresForm(request.POST)
    if form.is_valid():
        services.capture_set_structures(request=request, user=request.user, capture=capture,
                                        structures=form.cleaned_data["structures"],
                                        melanocytic=form.cleaned_data["melanocytic"])
        messages.success(request, "Dermoscopic structures saved.")
    return redirect(f"{_case_url(capture.lesion_id)}#capture-{capture.pk}")


@require_POST
def lesion_assessment(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    form = AssessmentForm(request.POST, instance=lesion)
    if form.is_valid():
        form.save(commit=False)
        services.lesion_update(request=request, user=request.user, lesion=lesion, changed=form.changed_data,
                               follow_up=form.cleaned_data["follow_up"])
        messages.success(request, "Assessment saved."
                         + (f" Next review {lesion.next_review_date:%-d %b %Y}." if lesion.next_review_date else ""))
        return redirect(f"{_case_url(lesion.pk)}#assessment")
    return render(request, "lesions/case.html", case_context(lesion, assessment_form=form), status=400)


@require_POST
def lesion_histopathology(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    # The form works on its own copy of the row: validation writes the submission onto its
    # instance, and the page (the lesion's note included) must show only what is saved.
    form = HistopathologyForm(request.POST, instance=selectors.histopathology_to_edit(lesion))
    if form.is_valid():
        services.histopathology_record(request=request, user=request.user, histopathology=form.save(commit=False),
                                       changed=form.changed_data)
        messages.success(request, "Histopathology saved; the stage note below is updated.")
        return redirect(f"{_case_url(lesion.pk)}#histopathology")
    return render(request, "lesions/case.html", case_context(lesion, histopathology_form=form), status=400)


@require_GET
@passive_request
def lesion_statuses(request: HttpRequest, pk: int) -> JsonResponse:
    """The case page's polling: not an audited view and not activity. `poll` turns false once the
    clinician has been idle STATUS_POLL_MAX_SECONDS, so an unattended page stops asking."""
    lesion = selectors.lesion_for(request.user, pk)
    return JsonResponse({"analyses": selectors.analysis_statuses(lesion),
                         "poll": idle_seconds(request) < settings.STATUS_POLL_MAX_SECONDS})


@require_GET
@passive_request
def capture_card(request: HttpRequest, pk: int) -> HttpResponse:
    """One capture's card and the lesion's note, for the case page to swap in when an analysis
    finishes: part of the case page already viewed (and audited), so no second "viewed" row."""
    capture = selectors.capture_for(request.user, pk)
    context = case_context(capture.lesion)
    context["rows"] = [row for row in context["rows"] if row.capture.pk == capture.pk]
    return render(request, "lesions/capture_card.html", context)


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


DICOM_KINDS = ("original", "overlay")


def dicom_export(capture, kind: str) -> bytes:
    """The capture (kind "original") or its overlay as DICOM bytes; raises lesions.dicom.NoOverlay."""
    # pydicom and numpy load only when someone exports: the web process stays light.
    from lesions import dicom  # noqa: PLC0415

    return dicom.capture_dicom(capture) if kind == "original" else dicom.overlay_dicom(capture)


@require_GET
def capture_dicom(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    """The capture (or its analysis overlay) as a DICOM file to file in a PACS; audited as a download."""
    if kind not in DICOM_KINDS:
        raise Http404
    capture = selectors.capture_for(request.user, pk)
    try:
        data = dicom_export(capture, kind)
    except (LookupError, FileNotFoundError):  # lesions.dicom.NoOverlay is a LookupError
        raise Http404 from None
    audit.record(request=request, user=request.user, action=AuditEvent.Action.DOWNLOAD, obj=capture,
                 clinic_id=capture.lesion.patient.clinic_id, detail={"format": "dicom", "image": kind})
    return dicom_response(data, dicom_file_name(capture, kind))


def dicom_file_name(capture, kind: str) -> str:
    # No patient identifiers in the name: it ends up in download folders and mail attachments.
    return f"capture-{capture.pk}-{kind}.dcm"


def dicom_response(data: bytes, name: str) -> HttpResponse:
    response = HttpResponse(data, content_type="application/dicom")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response


def lesion_compare(request: HttpRequest, pk: int) -> HttpResponse:
    lesion = selectors.lesion_for(request.user, pk)
    audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=lesion,
                 clinic_id=lesion.patient.clinic_id, detail={"page": "compare"})
    return render(request, "lesions/compare.html",
                  compare_context(lesion, request.GET.get("a"), request.GET.get("b")))


def _case_url(lesion_id: int) -> str:
    return reverse("lesion_case", args=[lesion_id])


@require_GET
def clinical_rules(request: HttpRequest) -> HttpResponse:
    """Every clinical rule the software applies, with its source, generated from the code's constants."""
    return render(request, "lesions/clinical_rules.html", {"sections": rules.all_sections()})


def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The patient page: the patient's lesions, so it lives with the lesions."""
    patient = patient_for(request.user, pk)
    audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=patient,
                 clinic_id=patient.clinic_id)
    return render(request, "clinic/patient_detail.html",
                  {"patient": patient, "lesions_html": patient_lesions_html(patient)})


def patient_summary(request: HttpRequest, pk: int) -> HttpResponse:
    """A printable summary: every lesion, the body map and each lesion's latest capture."""
    patient = patient_for(request.user, pk)
    audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=patient,
                 clinic_id=patient.clinic_id, detail={"page": "summary"})
    return render(request, "lesions/patient_summary.html",
                  patient_context(patient, selectors.patient_lesions_with_trends(patient)))


def _chosen_clinic(request: HttpRequest):
    """The clinic whose worklist is shown: ?clinic=<id> among the user's own, else the first."""
    clinics = list(clinics_for(request.user).order_by("name", "id"))
    wanted = request.GET.get("clinic", "")
    chosen = next((c for c in clinics if str(c.pk) == wanted), clinics[0] if clinics else None)
    if wanted and chosen is not None and str(chosen.pk) != wanted:
        raise Http404
    return clinics, chosen


@require_GET
def worklist(request: HttpRequest) -> HttpResponse:
    """The home page: what waits for a clinician in one clinic today."""
    clinics, clinic = _chosen_clinic(request)
    html = worklist_html(clinic.pk, timezone.localdate()) if clinic else ""
    return render(request, "lesions/worklist.html", {"clinics": clinics, "clinic": clinic, "worklist_html": html})


@require_POST
def analysis_retry(request: HttpRequest, pk: int) -> HttpResponse:
    analysis = selectors.analysis_for(request.user, pk)
    if services.analysis_retry(request=request, user=request.user, analysis=analysis):
        messages.success(request, f"Analysis of capture {analysis.capture_id} queued again.")
    else:
        messages.info(request, "That analysis is no longer failed; nothing to retry.")
    back = request.POST.get("next", "")
    if back.startswith("/") and not back.startswith("//"):
        return redirect(back)
    return redirect("worklist")


@require_GET
def recall_export(request: HttpRequest) -> HttpResponse:
    """Recalls of one clinic up to a date (default: those due within the window) as CSV for letters."""
    _clinics, clinic = _chosen_clinic(request)
    if clinic is None:
        raise Http404
    today = timezone.localdate()
    until = parse_date(request.GET.get("until", "") or "") or recalls.due_cutoff(today)
    lesions = selectors.recall_list(clinic.pk, until)
    audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=clinic,
                 clinic_id=clinic.pk, detail={"export": "recalls", "until": until.isoformat()})
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="recalls-{clinic.pk}-{until.isoformat()}.csv"'
    writer = csv.writer(response)
    writer.writerow(["patient_identifier", "patient_name", "date_of_birth", "lesion", "body_site",
                     "next_review", "state", "decision"])
    for lesion in lesions.iterator(chunk_size=500):
        patient = lesion.patient
        writer.writerow(safe_row([patient.identifier, patient.name, patient.date_of_birth or "", lesion.label,
                                  lesion.get_body_site_display(), lesion.next_review_date.isoformat(),
                                  recalls.recall_state(lesion.next_review_date, today),
                                  lesion.get_decision_display()]))
    return response
