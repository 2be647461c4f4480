from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.template.response import TemplateResponse

from clinic import services
from clinic.models import AuditEvent, Clinic, Membership, Patient


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Clinic)
class ClinicAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "clinic", "role"]
    list_filter = ["clinic", "role"]
    search_fields = ["user__username", "clinic__name"]
    list_select_related = ["user", "clinic"]


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["identifier", "name", "clinic", "date_of_birth", "sex", "skin_type", "updated_at"]
    list_filter = ["clinic", "sex", "skin_type"]
    search_fields = ["identifier", "name"]
    list_select_related = ["clinic"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    actions = ["delete_with_files"]
    show_full_result_count = False

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        # Bulk deletion must go through the action that also removes stored images.
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request: HttpRequest, obj: Patient) -> None:
        services.patient_delete(request=request, user=request.user, patient=obj)

    @admin.action(description="Delete selected patients with all their images", permissions=["delete"])
    def delete_with_files(self, request: HttpRequest, queryset) -> None:
        if request.POST.get("confirm") != "yes":
            return TemplateResponse(request, "admin/confirm_patient_delete.html", {
                "patients": queryset, "action": "delete_with_files", **self.admin_site.each_context(request),
                "opts": self.model._meta})
        count = 0
        for patient in queryset:
            services.patient_delete(request=request, user=request.user, patient=patient)
            count += 1
        messages.success(request, f"Deleted {count} patient(s) with their lesions, captures and images.")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "username", "action", "object_type", "object_id", "object_repr", "clinic_id", "ip_address"]
    list_filter = ["action", "object_type", "at"]
    search_fields = ["username", "object_id", "object_repr", "ip_address"]
    date_hierarchy = "at"
    show_full_result_count = False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser
