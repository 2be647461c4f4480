"""Clinic boundaries in Django admin.

Every ModelAdmin on the site is either clinic-scoped (ClinicScopedAdmin: its rows, its
foreign-key and many-to-many choices and its actions are limited to the clinics the user is a
member of) or superuser-only (SuperuserOnlyAdmin). Superusers see everything. Choices for a
related model are scoped by that model's own registered admin; a model with no scoped admin
offers no choices to non-superusers (deny by default). Admin reads and writes leave audit rows
like the app's.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from clinic import audit
from clinic.models import AuditEvent
from clinic.selectors import clinic_ids_for


def scope_of(request: HttpRequest) -> list[int] | None:
    """The clinic ids the user may see in admin; None means every clinic (superusers)."""
    if request.user.is_superuser:
        return None
    return clinic_ids_for(request.user)


def scoped_related_queryset(site: admin.AdminSite, model: type[Model], queryset: QuerySet,
                            request: HttpRequest) -> QuerySet:
    clinic_ids = scope_of(request)
    if clinic_ids is None:
        return queryset
    if model is get_user_model():
        # Colleagues: the users who share a clinic with this user.
        return queryset.filter(memberships__clinic_id__in=clinic_ids).distinct()
    model_admin = site._registry.get(model)
    clinic_field = getattr(model_admin, "clinic_field", None)
    if clinic_field is None:
        return queryset.none()
    return queryset.filter(**{f"{clinic_field}__in": clinic_ids})


class ScopedChoicesMixin:
    """Foreign-key and many-to-many choices limited to the user's clinics (forms and validation)."""

    def get_field_queryset(self, db, db_field, request: HttpRequest):
        queryset = super().get_field_queryset(db, db_field, request)
        if queryset is None:
            queryset = db_field.remote_field.model._default_manager.using(db).all()
        return scoped_related_queryset(self.admin_site, db_field.remote_field.model, queryset, request)


class ClinicScopedAdmin(ScopedChoicesMixin, admin.ModelAdmin):
    # The lookup from this model to its clinic's id, e.g. "patient__clinic_id".
    clinic_field: str = ""
    # Whether opening a change page writes a "viewed" row (off for the audit trail itself).
    audit_views: bool = True

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        clinic_ids = scope_of(request)
        if clinic_ids is None:
            return queryset
        return queryset.filter(**{f"{self.clinic_field}__in": clinic_ids})

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) and (request.user.is_superuser or bool(scope_of(request)))

    def clinic_id_of(self, obj: Model) -> int | None:
        value: Any = obj
        for part in self.clinic_field.split("__"):
            value = getattr(value, part, None)
            if value is None:
                return None
        return value

    def _audit(self, request: HttpRequest, obj: Model, action: str, **detail: Any) -> None:
        audit.record(request=request, user=request.user, action=action, obj=obj, clinic_id=self.clinic_id_of(obj),
                     detail={"via": "admin", **detail})

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        if request.method == "GET" and self.audit_views:
            obj = self.get_object(request, unquote(object_id))
            if obj is not None:
                self._audit(request, obj, AuditEvent.Action.VIEW)
        return super().change_view(request, object_id, form_url, extra_context)

    def log_addition(self, request: HttpRequest, obj: Model, message: Any):
        self._audit(request, obj, AuditEvent.Action.CREATE)
        return super().log_addition(request, obj, message)

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        obj._audit_changed_fields = list(form.changed_data)  # field names, for log_change's audit row
        super().save_model(request, obj, form, change)

    def log_change(self, request: HttpRequest, obj: Model, message: Any):
        self._audit(request, obj, AuditEvent.Action.CHANGE, fields=getattr(obj, "_audit_changed_fields", []))
        return super().log_change(request, obj, message)

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        """Subclasses whose rows own stored files delete through their service instead."""
        self._audit(request, obj, AuditEvent.Action.DELETE)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        # One by one through delete_model, so that each row gets its audit row and its files go.
        for obj in self.get_queryset(request).filter(pk__in=queryset.values("pk")):
            self.delete_model(request, obj)


class ClinicScopedInline(ScopedChoicesMixin, admin.options.InlineModelAdmin):
    pass


class SuperuserOnlyAdmin(admin.ModelAdmin):
    """Clinics, memberships, users and the lockout tables: whoever manages them can reach every clinic."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser


def superuser_only(model_admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """The same admin class, reachable by superusers only."""
    return type(f"SuperuserOnly{model_admin_class.__name__}", (SuperuserOnlyAdmin, model_admin_class), {})


def restrict_to_superusers(site: admin.AdminSite, model: type[Model]) -> None:
    """Re-register another app's admin (auth's users and groups, axes' lockout tables) superuser-only."""
    if site.is_registered(model):
        current = type(site._registry[model])
        site.unregister(model)
        site.register(model, superuser_only(current))
