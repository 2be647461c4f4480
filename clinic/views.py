from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from clinic import selectors, services
from clinic.forms import PatientForm, PatientSearchForm

PATIENTS_PER_PAGE = 25


def patient_list(request: HttpRequest) -> HttpResponse:
    form = PatientSearchForm(request.GET)
    query = form.cleaned_data["q"] if form.is_valid() else ""
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


def patient_edit(request: HttpRequest, pk: int) -> HttpResponse:
    patient = selectors.patient_for(request.user, pk)
    form = PatientForm(request.POST or None, instance=patient, clinics=selectors.clinics_for(request.user))
    if request.method == "POST" and form.is_valid():
        form.save(commit=False)
        services.patient_update(request=request, user=request.user, patient=patient, changed=form.changed_data)
        messages.success(request, "Patient updated.")
        return redirect("patient_detail", pk=patient.pk)
    return render(request, "clinic/patient_form.html", {"form": form, "patient": patient})
