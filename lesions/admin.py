from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from lesions import services
from lesions.models import Analysis, Capture, Histopathology, Lesion


class HistopathologyInline(admin.StackedInline):
    model = Histopathology
    extra = 0


@admin.register(Lesion)
class LesionAdmin(admin.ModelAdmin):
    list_display = ["label", "patient", "body_site", "status", "clinical_diagnosis", "decision", "updated_at"]
    list_filter = ["status", "body_site", "decision", "patient__clinic"]
    search_fields = ["label", "clinical_diagnosis", "patient__identifier", "patient__name"]
    list_select_related = ["patient"]
    raw_id_fields = ["patient"]
    inlines = [HistopathologyInline]
    show_full_result_count = False


@admin.register(Capture)
class CaptureAdmin(admin.ModelAdmin):
    list_display = ["id", "lesion", "patient_identifier", "modality", "source", "taken_at", "width", "height"]
    list_filter = ["modality", "source", "lesion__patient__clinic"]
    search_fields = ["lesion__patient__identifier", "lesion__patient__name", "lesion__label", "sha256"]
    list_select_related = ["lesion", "lesion__patient"]
    raw_id_fields = ["lesion", "taken_by"]
    readonly_fields = ["image", "sha256", "width", "height", "created_at"]
    actions = ["reanalyze_with_current_models"]
    show_full_result_count = False

    @admin.display(description="Patient", ordering="lesion__patient__identifier")
    def patient_identifier(self, obj: Capture) -> str:
        return obj.lesion.patient.identifier

    @admin.action(description="Re-analyse with the current model version")
    def reanalyze_with_current_models(self, request: HttpRequest, queryset) -> None:
        queued = services.reanalyze(captures=queryset)
        messages.success(request, f"Queued {len(queued)} analysis(es) with model {services.current_model_version()}.")


@admin.register(Analysis)
class AnalysisAdmin(admin.ModelAdmin):
    list_display = ["id", "capture_id", "patient_identifier", "status", "probability", "model_version", "attempts",
                    "queued_at", "finished_at"]
    list_filter = ["status", "model_version", "device"]
    search_fields = ["capture__lesion__patient__identifier", "capture__lesion__patient__name", "error",
                     "capture__lesion__clinical_diagnosis"]
    list_select_related = ["capture__lesion__patient"]
    raw_id_fields = ["capture"]
    readonly_fields = ["timings", "features", "stage_note", "error"]
    actions = ["requeue"]
    show_full_result_count = False

    @admin.display(description="Patient", ordering="capture__lesion__patient__identifier")
    def patient_identifier(self, obj: Analysis) -> str:
        return obj.capture.lesion.patient.identifier

    @admin.action(description="Re-analyse these captures with the current model version")
    def requeue(self, request: HttpRequest, queryset) -> None:
        queued = services.reanalyze(captures=Capture.objects.filter(analyses__in=queryset).distinct())
        messages.success(request, f"Queued {len(queued)} analysis(es).")
