from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from clinic.admin_scoping import ClinicScopedAdmin, ClinicScopedInline
from lesions import services
from lesions.models import Analysis, Capture, Histopathology, Lesion


def image_link(capture_id: int, kind: str, label: str) -> str:
    """Images in admin open through the app's checked view (login, clinic check, audit row):
    stored files have no public URL, and local storage has none at all."""
    return format_html('<a href="{}">{}</a>', reverse("capture_image", args=[capture_id, kind]), label)


class HistopathologyInline(ClinicScopedInline, admin.StackedInline):
    model = Histopathology
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
    list_display = ["id", "capture_id", "patient_identifier", "status", "probability", "model_version", "attempts",
                    "queued_at", "finished_at"]
    list_filter = ["status", "model_version", "device"]
    search_fields = ["capture__lesion__patient__identifier", "capture__lesion__patient__name", "error",
                     "capture__lesion__clinical_diagnosis"]
    list_select_related = ["capture__lesion__patient"]
    raw_id_fields = ["capture"]
    exclude = ["mask", "overlay", "heatmap"]
    readonly_fields = ["images", "timings", "features", "stage_note", "error"]
    actions = ["requeue"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # analyses are made by the workers

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
