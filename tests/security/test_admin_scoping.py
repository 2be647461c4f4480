"""Django admin keeps clinic boundaries: walks every registered ModelAdmin as a staff user of
another clinic (holding every model permission), so that a new admin cannot slip through."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.core.files.storage import default_storage
from django.forms import ModelChoiceField
from django.test import Client
from django.urls import reverse

from clinic import audit
from clinic import services as services_clinic
from clinic.models import ApiToken, AuditEvent, Clinic, Membership, Patient
from lesions import services
from lesions.models import Analysis, Capture, Histopathology, Lesion
from tests.factories import LesionFactory, MembershipFactory, UserFactory, lesion_image

pytestmark = [pytest.mark.security, pytest.mark.django_db]

SUPERUSER_ONLY = {Clinic, Membership, Group, AccessAttempt, AccessLog, AccessFailureLog, ApiToken}
SECRETS = ["Ada Example", "MRN-A1", "Left shoulder naevus"]


@pytest.fixture
def clinic_a_objects(clinician, lesion):
    from django.contrib.auth import get_user_model

    capture = services.capture_create(request=None, user=clinician, lesion=lesion, data=lesion_image())
    # Failed, so that a re-analyse action reaching it would visibly re-queue it.
    capture.analyses.update(status=Analysis.Status.FAILED, error="decoder error")
    analysis = capture.analyses.get()
    histo = Histopathology.objects.create(lesion=lesion, in_situ=True)
    event = audit.record(request=None, user=clinician, action=AuditEvent.Action.VIEW, obj=lesion,
                         clinic_id=lesion.patient.clinic_id)
    return {
        Clinic: lesion.patient.clinic, Membership: Membership.objects.get(user=clinician), Patient: lesion.patient,
        Lesion: lesion, Histopathology: histo, Capture: capture, Analysis: analysis, AuditEvent: event,
        get_user_model(): clinician, Group: Group.objects.create(name="Clinic A leads"),
        AccessAttempt: AccessAttempt.objects.create(username="alice", ip_address="10.0.0.1", failures_since_start=1,
                                                    get_data="", post_data="", http_accept="", path_info="/"),
        AccessLog: AccessLog.objects.create(username="alice", ip_address="10.0.0.1", http_accept="", path_info="/"),
        AccessFailureLog: AccessFailureLog.objects.create(username="alice", ip_address="10.0.0.1", http_accept="",
                                                          path_info="/"),
        ApiToken: services_clinic.api_token_create(request=None, created_by=clinician, clinic=lesion.patient.clinic,
                                                   user=clinician, name="Dermoscope A").token,
    }


@pytest.fixture
def staff_of_clinic_b(other_clinic):
    user = UserFactory(username="mallory", is_staff=True)
    user.user_permissions.set(Permission.objects.all())
    MembershipFactory(user=user, clinic=other_clinic)
    client = Client()
    client.force_login(user)
    return user, client


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def assert_no_secrets(response, where: str) -> None:
    content = response.content.decode(errors="replace")
    for secret in SECRETS:
        assert secret not in content, f"{where} shows {secret!r}"


def snapshot(objects: dict) -> dict:
    from django.forms.models import model_to_dict

    return {model: model_to_dict(model._default_manager.get(pk=obj.pk)) for model, obj in objects.items()}


def test_every_registered_admin_is_walked(clinic_a_objects):
    unknown = set(admin.site._registry) - set(clinic_a_objects)
    assert not unknown, f"add a clinic-A object for {unknown} to the admin walker"


def test_staff_of_another_clinic_reaches_nothing_of_clinic_a(clinic_a_objects, staff_of_clinic_b):
    user, client = staff_of_clinic_b
    before = snapshot(clinic_a_objects)
    files_before = {n: default_storage.exists(n) for n in (clinic_a_objects[Capture].image.name,)}
    walked = 0
    for model, model_admin in admin.site._registry.items():
        obj = clinic_a_objects[model]
        pk = str(obj.pk)
        changelist = client.get(admin_url(model, "changelist"))
        if model in SUPERUSER_ONLY or model is type(clinic_a_objects[Lesion].created_by or user):
            assert changelist.status_code == 403, f"{model.__name__} changelist gave {changelist.status_code}"
            for view in ("add",):
                assert client.get(admin_url(model, view)).status_code == 403
            for view in ("change", "delete", "history"):
                assert client.get(admin_url(model, view, pk)).status_code in (403, 302)
                assert client.post(admin_url(model, view, pk), {"post": "yes"}).status_code in (403, 302)
        else:
            assert changelist.status_code == 200, f"{model.__name__} changelist gave {changelist.status_code}"
            shown = list(changelist.context["cl"].result_list)
            assert obj not in shown, f"{model.__name__} changelist lists clinic A's row"
            assert_no_secrets(changelist, f"{model.__name__} changelist")
            searched = client.get(admin_url(model, "changelist"), {"q": "Ada"})
            assert searched.status_code == 200 and obj not in list(searched.context["cl"].result_list)
            for view in ("change", "history", "delete"):
                response = client.get(admin_url(model, view, pk))
                assert response.status_code in (302, 403, 404), f"GET {model.__name__} {view} gave {response.status_code}"
                assert_no_secrets(client.get(admin_url(model, view, pk), follow=True), f"{model.__name__} {view}")
            response = client.post(admin_url(model, "delete", pk), {"post": "yes"})
            assert response.status_code in (302, 403, 404)
            response = client.post(admin_url(model, "change", pk), {})
            assert response.status_code in (302, 403, 404)
            add = client.get(admin_url(model, "add"))
            assert add.status_code in (200, 403)
            if add.status_code == 200:
                form = add.context["adminform"].form
                for name, field in form.fields.items():
                    if isinstance(field, ModelChoiceField):
                        related = field.queryset.model
                        if related in clinic_a_objects:
                            assert clinic_a_objects[related] not in field.queryset, \
                                f"{model.__name__} add offers clinic A's {related.__name__} in {name}"
            for action in model_admin.get_actions(changelist.wsgi_request):
                client.post(admin_url(model, "changelist"),
                            {"action": action, "_selected_action": [pk], "confirm": "yes", "post": "yes"})
        walked += 1
    assert walked == len(admin.site._registry)
    assert snapshot(clinic_a_objects) == before
    assert all(default_storage.exists(n) == e for n, e in files_before.items())
    assert clinic_a_objects[Capture].analyses.count() == 1
    assert not AuditEvent.objects.filter(user=user, clinic_id=clinic_a_objects[Clinic].pk).exists()


def test_staff_cannot_add_themselves_to_another_clinic(clinic_a_objects, staff_of_clinic_b):
    user, client = staff_of_clinic_b
    clinic_a = clinic_a_objects[Clinic]
    response = client.post(admin_url(Membership, "add"), {"user": user.pk, "clinic": clinic_a.pk, "role": "lead"})
    assert response.status_code == 403
    response = client.post(admin_url(Clinic, "change", clinic_a.pk), {
        "name": clinic_a.name, "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0",
        "memberships-0-user": user.pk, "memberships-0-role": "lead"})
    assert response.status_code == 403
    assert not Membership.objects.filter(user=user, clinic=clinic_a).exists()
    assert client.get(reverse("patient_detail", args=[clinic_a_objects[Patient].pk])).status_code == 404


@pytest.mark.parametrize("model,data", [
    (Patient, lambda o: {"clinic": o[Clinic].pk, "identifier": "X-1", "name": "Planted", "sex": "unknown"}),
    (Lesion, lambda o: {"patient": o[Patient].pk, "label": "Planted", "body_site": "unknown",
                        "status": "monitoring", "histopathology-TOTAL_FORMS": "0",
                        "histopathology-INITIAL_FORMS": "0"}),
])
def test_admin_add_refuses_another_clinics_parent(clinic_a_objects, staff_of_clinic_b, model, data):
    _, client = staff_of_clinic_b
    before = model.objects.count()
    response = client.post(admin_url(model, "add"), data(clinic_a_objects))
    assert response.status_code == 200  # the form again, with an error
    assert response.context["adminform"].form.errors
    assert model.objects.count() == before


def test_admin_reads_and_writes_leave_audit_rows(clinician, lesion, other_clinic):
    clinician.is_staff = True
    clinician.save()
    clinician.user_permissions.set(Permission.objects.all())
    client = Client()
    client.force_login(clinician)
    patient = lesion.patient
    assert client.get(admin_url(Patient, "change", patient.pk)).status_code == 200
    assert AuditEvent.objects.filter(action="view", object_type="Patient", object_id=str(patient.pk),
                                     username="alice", detail__via="admin").count() == 1
    response = client.post(admin_url(Lesion, "change", lesion.pk), {
        "patient": patient.pk, "label": "Renamed", "body_site": "unknown", "status": "monitoring",
        "histopathology-TOTAL_FORMS": "0", "histopathology-INITIAL_FORMS": "0"})
    assert response.status_code == 302
    change = AuditEvent.objects.get(action="change", object_type="Lesion", object_id=str(lesion.pk))
    assert change.clinic_id == patient.clinic_id and "label" in change.detail["fields"]


def test_capture_and_analysis_change_pages_render_on_local_storage(clinician, lesion):
    """Was a 500: the read-only image field asked local storage (no base URL) for a URL."""
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    MembershipFactory(user=superuser, clinic=lesion.patient.clinic)
    capture = services.capture_create(request=None, user=clinician, lesion=lesion, data=lesion_image())
    client = Client()
    client.force_login(superuser)
    response = client.get(admin_url(Capture, "change", capture.pk))
    assert response.status_code == 200
    image_url = reverse("capture_image", args=[capture.pk, "original"])
    assert image_url in response.content.decode()
    assert client.get(image_url).status_code == 200  # through the checked view, with its audit row
    assert AuditEvent.objects.filter(action="download", object_id=str(capture.pk), username="root").exists()
    assert client.get(admin_url(Analysis, "change", capture.analyses.get().pk)).status_code == 200


@pytest.fixture
def staff_of_clinic_a(clinician):
    clinician.is_staff = True
    clinician.save()
    clinician.user_permissions.set(Permission.objects.all())
    client = Client()
    client.force_login(clinician)
    return clinician, client


def test_admin_change_audit_row_names_who_where_and_which_fields(staff_of_clinic_a, lesion):
    _, client = staff_of_clinic_a
    response = client.post(admin_url(Lesion, "change", lesion.pk), {
        "patient": lesion.patient.pk, "label": "Renamed", "body_site": "unknown", "status": "monitoring",
        "histopathology-TOTAL_FORMS": "0", "histopathology-INITIAL_FORMS": "0"}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302
    lesion.refresh_from_db()
    assert lesion.label == "Renamed"
    change = AuditEvent.objects.get(action="change", object_type="Lesion", object_id=str(lesion.pk))
    assert (change.username, change.ip_address, change.clinic_id) == ("alice", "10.1.2.3", lesion.patient.clinic_id)
    assert change.detail["via"] == "admin" and "label" in change.detail["fields"]
    assert isinstance(change.detail["fields"], list)


def test_admin_add_leaves_a_create_row_in_the_new_records_clinic(staff_of_clinic_a, clinic):
    _, client = staff_of_clinic_a
    response = client.post(admin_url(Patient, "add"),
                           {"clinic": clinic.pk, "identifier": "MRN-NEW", "name": "New Patient", "sex": "unknown"},
                           REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302
    patient = Patient.objects.get(identifier="MRN-NEW")
    created = AuditEvent.objects.get(action="create", object_type="Patient", object_id=str(patient.pk))
    assert (created.username, created.clinic_id, created.ip_address) == ("alice", clinic.pk, "10.1.2.3")
    assert created.detail == {"via": "admin"}


def test_admin_delete_removes_the_row_and_audits_it(staff_of_clinic_a, lesion):
    _, client = staff_of_clinic_a
    histo = Histopathology.objects.create(lesion=lesion, in_situ=True)
    response = client.post(admin_url(Histopathology, "delete", histo.pk), {"post": "yes"}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302
    assert not Histopathology.objects.filter(pk=histo.pk).exists()
    deleted = AuditEvent.objects.get(action="delete", object_type="Histopathology", object_id=str(histo.pk))
    assert (deleted.username, deleted.clinic_id, deleted.ip_address) == ("alice", lesion.patient.clinic_id, "10.1.2.3")


def test_bulk_delete_reaches_only_the_users_clinics_and_audits_each_row(staff_of_clinic_a, lesion, other_lesion):
    _, client = staff_of_clinic_a
    own = Histopathology.objects.create(lesion=lesion, in_situ=True)
    second = Histopathology.objects.create(lesion=LesionFactory(patient=lesion.patient), in_situ=True)
    foreign = Histopathology.objects.create(lesion=other_lesion, in_situ=True)
    # Through the admin's own action, and straight into delete_queryset with an unscoped queryset
    # (a custom action that forgot to scope must still not reach another clinic).
    response = client.post(admin_url(Histopathology, "changelist"),
                           {"action": "delete_selected", "_selected_action": [own.pk, foreign.pk], "post": "yes"})
    assert response.status_code == 302
    assert not Histopathology.objects.filter(pk=own.pk).exists()
    request = response.wsgi_request
    admin.site._registry[Histopathology].delete_queryset(request, Histopathology.objects.all())
    assert list(Histopathology.objects.values_list("pk", flat=True)) == [foreign.pk]
    deleted = AuditEvent.objects.filter(action="delete", object_type="Histopathology")
    assert sorted(deleted.values_list("object_id", flat=True)) == sorted([str(own.pk), str(second.pk)])
    assert set(deleted.values_list("clinic_id", flat=True)) == {lesion.patient.clinic_id}


def test_restricting_another_apps_admin_keeps_it_but_shuts_out_everyone_but_superusers(rf, clinician):
    from django.contrib.auth.models import AnonymousUser

    from clinic.admin_scoping import SuperuserOnlyAdmin, restrict_to_superusers

    class GroupProbeAdmin(admin.ModelAdmin):
        search_fields = ["name"]

    site = admin.AdminSite(name="probe")
    site.register(Group, GroupProbeAdmin)
    restrict_to_superusers(site, Group)
    restrict_to_superusers(site, Clinic)  # not registered there: stays unregistered
    assert not site.is_registered(Clinic)
    restricted = site._registry[Group]
    assert isinstance(restricted, GroupProbeAdmin) and isinstance(restricted, SuperuserOnlyAdmin)
    assert type(restricted).__name__ == "SuperuserOnlyGroupProbeAdmin" and restricted.search_fields == ["name"]
    staff = UserFactory(username="staffer", is_staff=True)
    staff.user_permissions.set(Permission.objects.all())
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    retired = UserFactory(username="retired", is_staff=True, is_superuser=True, is_active=False)
    checks = ("has_module_permission", "has_view_permission", "has_add_permission", "has_change_permission",
              "has_delete_permission")
    for user, allowed in ((superuser, True), (staff, False), (retired, False), (AnonymousUser(), False)):
        request = rf.get("/admin/")
        request.user = user
        assert {check: getattr(restricted, check)(request) for check in checks} == dict.fromkeys(checks, allowed), user


def _index_models(client) -> set[str]:
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    return {m["object_name"] for app in response.context["app_list"] for m in app["models"]}


def test_the_admin_index_offers_clinic_records_only_to_members_with_permissions(clinic, clinician):
    member = UserFactory(username="member", is_staff=True)
    member.user_permissions.set(Permission.objects.all())
    MembershipFactory(user=member, clinic=clinic)
    outsider = UserFactory(username="outsider", is_staff=True)  # every permission, no clinic
    outsider.user_permissions.set(Permission.objects.all())
    unpermitted = UserFactory(username="unpermitted", is_staff=True)  # a clinic, no permission
    MembershipFactory(user=unpermitted, clinic=clinic)
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)  # no clinic: sees all
    shown = {}
    for user in (member, outsider, unpermitted, superuser):
        client = Client()
        client.force_login(user)
        shown[user.username] = _index_models(client)
    assert {"Patient", "Lesion", "Capture", "Analysis", "AuditEvent"} <= shown["member"]
    assert not {"Clinic", "Membership", "User", "Group", "ApiToken"} & shown["member"]
    assert shown["outsider"] == set() and shown["unpermitted"] == set()
    assert {"Patient", "Lesion", "Clinic", "User", "ApiToken", "AuditEvent"} <= shown["root"]


def test_a_change_page_read_is_one_view_row_and_a_save_adds_no_view_row(staff_of_clinic_a, lesion):
    _, client = staff_of_clinic_a
    page = client.get(admin_url(Lesion, "change", lesion.pk))
    # The form posts back to the page it came from (no action attribute).
    assert page.status_code == 200 and b'<form method="post" id="lesion_form"' in page.content
    assert AuditEvent.objects.filter(action="view", object_type="Lesion", object_id=str(lesion.pk)).count() == 1
    client.post(admin_url(Lesion, "change", lesion.pk), {
        "patient": lesion.patient.pk, "label": "Renamed", "body_site": "unknown", "status": "monitoring",
        "histopathology-TOTAL_FORMS": "0", "histopathology-INITIAL_FORMS": "0"})
    assert list(AuditEvent.objects.filter(object_type="Lesion", object_id=str(lesion.pk)).order_by("id")
                .values_list("action", flat=True)) == ["view", "change"]


def test_reading_the_audit_trail_in_admin_writes_no_audit_row(lesion, clinician):
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    event = audit.record(request=None, user=clinician, action=AuditEvent.Action.VIEW, obj=lesion,
                         clinic_id=lesion.patient.clinic_id)
    client = Client()
    client.force_login(superuser)  # a login row
    before = AuditEvent.objects.count()
    assert client.get(admin_url(AuditEvent, "change", event.pk)).status_code == 200
    assert AuditEvent.objects.count() == before


def test_related_choices_are_colleagues_by_username_and_nothing_of_unscoped_models(rf, clinic, other_clinic,
                                                                                  clinician):
    from django.contrib.auth import get_user_model

    from clinic.admin_scoping import scoped_related_queryset

    for name in ("zara", "bea"):
        MembershipFactory(user=UserFactory(username=name), clinic=clinic)
    MembershipFactory(user=UserFactory(username="carl"), clinic=other_clinic)
    request = rf.get("/admin/")
    request.user = clinician
    lesion_admin = admin.site._registry[Lesion]
    field = lesion_admin.formfield_for_dbfield(Lesion._meta.get_field("assessed_by"), request)
    assert [u.username for u in field.queryset] == ["alice", "bea", "zara"]
    # Groups have a superuser-only admin with no clinic: a non-superuser is offered none (deny by default).
    Group.objects.create(name="Leads")
    assert list(scoped_related_queryset(admin.site, Group, Group.objects.all(), request)) == []
    assert list(scoped_related_queryset(admin.site, Permission, Permission.objects.all()[:3], request)) == []
    assert get_user_model().objects.filter(username="carl").exists()
