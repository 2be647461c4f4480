from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from clinic import audit, health, selectors, services
from clinic.forms import PatientForm, PatientSearchForm
from clinic.models import AuditEvent

PATIENTS_PER_PAGE = 25


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": health.check_database(), "broker": health.check_broker(),
              "storage": health.check_storage()}
    down = sorted(name for name, problem in checks.items() if problem)
    body = {
        "status": "ok" if not down else "down",
        "down": down,
        "checks": {name: ("ok" if problem is None else problem) for name, problem in checks.items()},
        "workers": health.worker_status(),
    }
    return JsonResponse(body, status=503 if down else 200)


def patient_list(request: HttpRequest) -> HttpResponse:
    form = PatientSearchForm(request.GET)
    query = form.data.get("q", "")
    page = Paginator(selectors.patients_for(request.user, query), PATIENTS_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = selectors.with_lesion_counts(list(page.object_list))
    return render(request, "clinic/patient_list.html", {"page": page, "form": form, "query": query})


def patient_create(request: HttpRequest) -> HttpResponse:
    clinics = selectors.clinics_for(request.user)
    form = PatientForm(request.POST or None, clinics=clinics)
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if k != "clinic"}
        patient = services.patient_create(request=request, user=request.user, clinic=form.cleaned_data["clinic"],
                                          data=data)
        messages.success(request, f"Patient {patient.name} created.")
        return redirect("patient_detail", pk=patient.pk)
    return render(request, "clinic/patient_form.html", {"form": form, "creating": True})


def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    from lesions.selectors import lesions_with_latest

    patient = selectors.patient_for(request.user, pk)
    audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=patient,
                 clinic_id=patient.clinic_id)
    return render(request, "clinic/patient_detail.html",
                  {"patient": patient, "lesions": lesions_with_latest(patient)})


def patient_edit(request: HttpRequest, pk: int) -> HttpResponse:
    patient = selectors.patient_for(request.user, pk)
    form = PatientForm(request.POST or None, instance=patient, clinics=selectors.clinics_for(request.user))
    if request.method == "POST" and form.is_valid():
        form.save(commit=False)
        services.patient_update(request=request, user=request.user, patient=patient, changed=form.changed_data)
        messages.success(request, "Patient updated.")
        return redirect("patient_detail", pk=patient.pk)
    return render(request, "clinic/patient_form.html", {"form": form, "patient": patient})
