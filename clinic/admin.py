from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.http import HttpRequest
from django.template.response import TemplateResponse

from clinic import services
from clinic.admin_scoping import ClinicScopedAdmin, SuperuserOnlyAdmin, restrict_to_superusers
from clinic.models import ApiToken, AuditEvent, Clinic, Membership, Patient


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Clinic)
class ClinicAdmin(SuperuserOnlyAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]
    clinic_field = "id"  # how other admins scope their choices of clinic


@admin.register(Membership)
class MembershipAdmin(SuperuserOnlyAdmin):
    list_display = ["user", "clinic", "role"]
    list_filter = ["clinic", "role"]
    search_fields = ["user__username", "clinic__name"]
    list_select_related = ["user", "clinic"]
    clinic_field = "clinic_id"


@admin.register(Patient)
class PatientAdmin(ClinicScopedAdmin):
    clinic_field = "clinic_id"
    list_display = ["identifier", "name", "clinic", "date_of_birth", "sex", "skin_type", "updated_at"]
    list_filter = [("clinic", admin.RelatedOnlyFieldListFilter), "sex", "skin_type"]
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
    def delete_with_files(self, request: HttpRequest, queryset) -> TemplateResponse | None:
        queryset = self.get_queryset(request).filter(pk__in=queryset.values("pk"))
        if request.POST.get("confirm") != "yes":
            return TemplateResponse(request, "admin/confirm_patient_delete.html", {
                "patients": queryset, "action": "delete_with_files", **self.admin_site.each_context(request),
                "opts": self.model._meta})
        count = 0
        for patient in queryset:
            services.patient_delete(request=request, user=request.user, patient=patient)
            count += 1
        messages.success(request, f"Deleted {count} patient(s) with their lesions, captures and images.")
        return None


@admin.register(AuditEvent)
class AuditEventAdmin(ClinicScopedAdmin):
    """Read-only for everyone, superusers included: the trail cannot be edited or deleted here."""

    clinic_field = "clinic_id"
    audit_views = False
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
        return False


# Whoever manages users, groups or the lockout tables can reach every clinic (or unlock an
# attacker): superusers only.
def _restrict_other_apps() -> None:
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog  # noqa: PLC0415 (axes' models need the app registry)

    for model in (get_user_model(), Group, AccessAttempt, AccessLog, AccessFailureLog):
        restrict_to_superusers(admin.site, model)


_restrict_other_apps()


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name", "clinic", "user"]

    def clean(self):
        cleaned = super().clean()
        clinic, user = cleaned.get("clinic"), cleaned.get("user")
        if clinic and user and not Membership.objects.filter(user=user, clinic=clinic).exists():
            self.add_error("user", f"{user} does not belong to {clinic}; add the membership first.")
        return cleaned


@admin.register(ApiToken)
class ApiTokenAdmin(SuperuserOnlyAdmin):
    """Tokens are made here and shown once; only their hash is kept. They cannot be edited,
    only revoked (kept for the audit trail). A token reaches a whole clinic: superusers only."""

    form = ApiTokenForm
    list_display = ["name", "prefix", "clinic", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["clinic", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["clinic", "user"]
    autocomplete_fields = ["user", "clinic"]
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None):
        if obj is None:
            return []
        return ["name", "clinic", "user", "prefix", "created_at", "created_by", "last_used_at", "revoked_at"]

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # revoke instead: the audit trail names tokens by prefix

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        if change:
            return
        issued = services.api_token_create(request=request, created_by=request.user, clinic=obj.clinic,
                                           user=obj.user, name=obj.name)
        obj.pk, obj.prefix, obj.key_hash = issued.token.pk, issued.token.prefix, issued.token.key_hash
        messages.warning(request, f"The token for {obj.name} is {issued.plaintext} - copy it now: "
                                  f"it is not stored and will not be shown again.")

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset) -> None:
        for token in queryset:
            services.api_token_revoke(request=request, revoked_by=request.user, token=token)
        messages.success(request, f"Revoked {queryset.count()} token(s).")
