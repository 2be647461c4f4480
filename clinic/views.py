from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe

from clinic import audit, presentation, searches, selectors, services
from clinic.forms import PatientForm, PatientSearchForm
from clinic.models import AuditEvent

PATIENTS_PER_PAGE = 25


def patient_list(request: HttpRequest) -> HttpResponse:
    """The patient list; a search is posted (names stay out of URLs) and shown under a token."""
    if request.method == "POST":
        form = PatientSearchForm(request.POST)
        if form.is_valid():
            query = form.cleaned_data["q"].strip()
            if not query:
                return redirect("patient_list")
            clinic_ids = selectors.clinic_ids_for(request.user)
            search = selectors.patient_search(request.user, query)
            audit.record_search(request=request, user=request.user,
                                clinic_id=clinic_ids[0] if len(clinic_ids) == 1 else None, query=query,
                                listed=search.listed, capped=search.more)
            return redirect(f"{reverse('patient_list')}?s={searches.remember(request, query)}")
        return render(request, "clinic/patient_list.html", {"form": form, "page": None}, status=400)
    token = request.GET.get("s", "")
    query = searches.recall(request, token) if token else ""
    if query is None:
        messages.info(request, "That search has expired; please search again.")
        return redirect("patient_list")
    search, page, rows = presentation.patient_search_page(request.user, query, request.GET.get("page"),
                                                          PATIENTS_PER_PAGE)
    form = PatientSearchForm(initial={"q": query})
    return render(request, "clinic/patient_list.html", {
        "page": page, "rows": mark_safe(rows),  # noqa: S308 - our own template's output, escaped there
        "search": search, "form": form, "query": query, "token": token})


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


def patient_edit(request: HttpRequest, pk: int) -> HttpResponse:
    patient = selectors.patient_for(request.user, pk)
    form = PatientForm(request.POST or None, instance=patient, clinics=selectors.clinics_for(request.user))
    if request.method == "POST" and form.is_valid():
        form.save(commit=False)
        services.patient_update(request=request, user=request.user, patient=patient, changed=form.changed_data)
        messages.success(request, "Patient updated.")
        return redirect("patient_detail", pk=patient.pk)
    if request.method == "GET":
        # The edit form shows the whole record: a read like the patient page.
        audit.record(request=request, user=request.user, action=AuditEvent.Action.VIEW, obj=patient,
                     clinic_id=patient.clinic_id, detail={"page": "edit"})
    return render(request, "clinic/patient_form.html", {"form": form, "patient": patient})
