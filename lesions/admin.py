from __future__ import annotations

import csv

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.functional import lazy
from django.utils.html import format_html

from clinic.admin_scoping import ClinicScopedAdmin, ClinicScopedInline
from lesions import notes, services, stage_note
from lesions.forms import HistopathologyForm
from lesions.models import Analysis, Capture, Histopathology, Lesion


def image_link(capture_id: int, kind: str, label: str) -> str:
    """Images in admin open through the app's checked view (login, clinic check, audit row):
    stored files have no public URL, and local storage has none at all."""
    return format_html('<a href="{}">{}</a>', reverse("capture_image", args=[capture_id, kind]), label)


class HistopathologyInline(ClinicScopedInline, admin.StackedInline):
    model = Histopathology
    form = HistopathologyForm  # same fields, help texts and checks (Histopathology.clean) as the case page
    extra = 0


@admin.register(Lesion)
class LesionAdmin(ClinicScopedAdmin):
    clinic_field = "patient__clinic_id"
    list_display = ["label", "patient", "body_site", "status", "clinical_diagnosis", "decision", "updated_at"]
    list_filter = ["status", "body_site", "decision", ("patient__clinic", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["label", "clinical_diagnosis", "patient__identifier", "patient__name"]
    list_select_related = ["patient"]
    raw_id_fields = ["patient"]
    inlines = [HistopathologyInline]
    show_full_result_count = False

    def delete_model(self, request: HttpRequest, obj: Lesion) -> None:
        services.lesion_delete(request=request, user=request.user, lesion=obj)


@admin.register(Histopathology)
class HistopathologyAdmin(ClinicScopedAdmin):
    """Registered so that its rows' clinic is known (the lesion page edits them inline)."""

    clinic_field = "lesion__patient__clinic_id"
    list_display = ["lesion", "in_situ", "breslow_mm", "ulceration", "n_category", "m_category", "recorded_at"]
    list_select_related = ["lesion"]
    raw_id_fields = ["lesion"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return False  # reached through the lesion page; not listed in the index


@admin.register(Capture)
class CaptureAdmin(ClinicScopedAdmin):
    clinic_field = "lesion__patient__clinic_id"
    list_display = ["id", "lesion", "patient_identifier", "modality", "source", "taken_at", "width", "height"]
    list_filter = ["modality", "source", ("lesion__patient__clinic", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["lesion__patient__identifier", "lesion__patient__name", "lesion__label", "sha256"]
    list_select_related = ["lesion", "lesion__patient"]
    raw_id_fields = ["lesion", "taken_by"]
    exclude = ["image", "thumbnail"]
    readonly_fields = ["original_image", "sha256", "width", "height", "created_at"]
    actions = ["reanalyze_with_current_models"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # images come in through the app's checked upload, which strips metadata

    @admin.display(description="Patient", ordering="lesion__patient__identifier")
    def patient_identifier(self, obj: Capture) -> str:
        return obj.lesion.patient.identifier

    @admin.display(description="Image")
    def original_image(self, obj: Capture) -> str:
        return image_link(obj.pk, "original", "Open the image") if obj.pk and obj.image else "—"

    def delete_model(self, request: HttpRequest, obj: Capture) -> None:
        services.capture_delete(request=request, user=request.user, capture=obj)

    @admin.action(description="Re-analyse with the current model version", permissions=["change"])
    def reanalyze_with_current_models(self, request: HttpRequest, queryset) -> None:
        queued = services.reanalyze(captures=self.get_queryset(request).filter(pk__in=queryset.values("pk")))
        messages.success(request, f"Queued {len(queued)} analysis(es) with model {services.current_model_version()}.")


@admin.register(Analysis)
class AnalysisAdmin(ClinicScopedAdmin):
    clinic_field = "capture__lesion__patient__clinic_id"
    list_display = ["id", "capture_id", "patient_identifier", "status", "melanoma_output", "model_version", "attempts",
                    "queued_at", "finished_at"]
    list_filter = ["status", "model_version", "device"]
    search_fields = ["capture__lesion__patient__identifier", "capture__lesion__patient__name", "error",
                     "capture__lesion__clinical_diagnosis"]
    list_select_related = ["capture__lesion__patient"]
    raw_id_fields = ["capture"]
    exclude = ["mask", "overlay", "heatmap"]
    readonly_fields = ["images", "timings", "features", "stage_note", "error"]
    actions = ["requeue", "export_csv"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # analyses are made by the workers

    def get_changelist_instance(self, request):
        self._manifest = notes.current_manifest()
        return super().get_changelist_instance(request)

    # The column is named by the one function that names the output (lesions.stage_note.score_name).
    @admin.display(description=lazy(lambda: notes.current_score_name().capitalize(), str)(),
                   ordering="probability")
    def melanoma_output(self, obj: Analysis) -> str:
        if obj.probability is None:
            return "—"
        manifest = getattr(self, "_manifest", None)
        calibrated = notes.is_calibrated(obj, manifest)
        return f"{obj.probability:.2f}" + ("" if calibrated else " (score)")

    @admin.action(description="Export selected analyses as CSV")
    def export_csv(self, request: HttpRequest, queryset) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="analyses.csv"'
        manifest = notes.current_manifest()
        rows = list(queryset.select_related("capture__lesion__patient").order_by("id"))
        # A column is a probability only if every value in it is one (one naming function for all pages).
        column = stage_note.score_name(bool(rows) and all(notes.is_calibrated(a, manifest) for a in rows))
        writer = csv.writer(response)
        writer.writerow(["analysis_id", "capture_id", "patient_identifier", "status", "model_version",
                         column.capitalize(), "operating_threshold"])
        for analysis in rows:
            writer.writerow([analysis.pk, analysis.capture_id, analysis.capture.lesion.patient.identifier,
                             analysis.status, analysis.model_version,
                             "" if analysis.probability is None else f"{analysis.probability:.4f}",
                             "" if analysis.threshold is None else f"{analysis.threshold:.4f}"])
        return response

    @admin.display(description="Patient", ordering="capture__lesion__patient__identifier")
    def patient_identifier(self, obj: Analysis) -> str:
        return obj.capture.lesion.patient.identifier

    @admin.display(description="Images (newest finished analysis of the capture)")
    def images(self, obj: Analysis) -> str:
        if not obj.pk:
            return "—"
        links = [image_link(obj.capture_id, kind, kind) for kind in ("mask", "overlay", "heatmap")
                 if getattr(obj, kind)]
        return format_html(" · ".join(["{}"] * len(links)), *links) if links else "—"

    def delete_model(self, request: HttpRequest, obj: Analysis) -> None:
        services.analysis_delete(request=request, user=request.user, analysis=obj)

    @admin.action(description="Re-analyse these captures with the current model version", permissions=["change"])
    def requeue(self, request: HttpRequest, queryset) -> None:
        in_scope = self.get_queryset(request).filter(pk__in=queryset.values("pk"))
        queued = services.reanalyze(captures=Capture.objects.filter(analyses__in=in_scope).distinct())
        messages.success(request, f"Queued {len(queued)} analysis(es).")
