"""Follow-up recalls: intervals at their boundaries (lesions/recalls.py cites the sources), the
assessment form booking them, the lesion and patient pages showing them, the CSV for letters."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from clinic.csv_cells import spreadsheet_safe
from clinic.models import AuditEvent
from lesions import recalls
from tests.factories import LesionFactory, PatientFactory
from tests.support.heap_order import read_in_table_order, scramble_table_order


@pytest.mark.parametrize("start, months, expected", [
    (date(2026, 1, 15), 3, date(2026, 4, 15)),
    (date(2026, 11, 30), 3, date(2027, 2, 28)),   # no 30 February: the month's last day
    (date(2027, 11, 30), 3, date(2028, 2, 29)),   # leap year
    (date(2026, 10, 31), 12, date(2027, 10, 31)),
    (date(2026, 8, 31), 6, date(2027, 2, 28)),
])
def test_add_months_clamps_to_the_months_end(start, months, expected):
    assert recalls.add_months(start, months) == expected


def test_intervals_follow_the_monitoring_protocols():
    # Menzies 2001 / Kittler 2006: short-term 3 months; Argenziano 2008: routine 6-12 months.
    assert recalls.next_review_date(date(2026, 1, 1)) == date(2026, 4, 1)
    assert recalls.next_review_date(date(2026, 1, 1), "routine6") == date(2026, 7, 1)
    assert recalls.next_review_date(date(2026, 1, 1), "routine12") == date(2027, 1, 1)


def test_recall_state_boundaries():
    today = date(2026, 5, 10)
    assert recalls.recall_state(None, today) == ""
    assert recalls.recall_state(today - timedelta(days=1), today) == "overdue"
    assert recalls.recall_state(today, today) == "due"
    assert recalls.recall_state(today + timedelta(days=recalls.DUE_WITHIN_DAYS), today) == "due"
    assert recalls.recall_state(today + timedelta(days=recalls.DUE_WITHIN_DAYS + 1), today) == "scheduled"


@pytest.mark.parametrize("value, expected", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1", "'+1"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("Ada", "Ada"), ("", ""), (None, ""), (12, "12"),
])
def test_spreadsheet_safe_cells(value, expected):
    assert spreadsheet_safe(value) == expected




def assess(client, lesion, **data):
    payload = {"clinical_diagnosis": "dysplastic naevus", "decision": "monitor", "status": "monitoring",
               "follow_up": "", "next_review_date": ""}
    payload.update(data)
    return client.post(reverse("lesion_assessment", args=[lesion.pk]), payload)


@pytest.mark.django_db
def test_monitor_books_short_term_review_by_default(client_logged_in, lesion):
    response = assess(client_logged_in, lesion)
    assert response.status_code == 302 and response.url.endswith("#assessment")
    lesion.refresh_from_db()
    assert lesion.next_review_date == recalls.add_months(timezone.localdate(), 3)


@pytest.mark.django_db
def test_routine_interval_and_typed_date_are_kept(client_logged_in, lesion):
    assess(client_logged_in, lesion, follow_up="routine12")
    lesion.refresh_from_db()
    assert lesion.next_review_date == recalls.add_months(timezone.localdate(), 12)
    typed = timezone.localdate() + timedelta(days=45)
    assess(client_logged_in, lesion, next_review_date=typed.isoformat())
    lesion.refresh_from_db()
    assert lesion.next_review_date == typed


@pytest.mark.django_db
def test_reassurance_ends_the_recall(client_logged_in, lesion):
    assess(client_logged_in, lesion)
    assess(client_logged_in, lesion, decision="reassure")
    lesion.refresh_from_db()
    assert lesion.next_review_date is None


@pytest.mark.django_db
def test_next_review_shows_on_lesion_and_patient_pages(client_logged_in, lesion):
    lesion.next_review_date = date(2031, 3, 4)
    lesion.decision = "monitor"
    lesion.save()
    case = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert "4 Mar 2031" in case
    patient_page = client_logged_in.get(reverse("patient_detail", args=[lesion.patient_id])).content.decode()
    assert "4 Mar 2031" in patient_page


@pytest.mark.django_db
def test_recall_csv_is_scoped_safe_and_audited(client_logged_in, clinic, other_clinic):
    today = timezone.localdate()
    patient = PatientFactory(clinic=clinic, name="=cmd|' /C calc'!A0", identifier="+MRN-1")
    LesionFactory(patient=patient, label="@evil", next_review_date=today - timedelta(days=2))
    LesionFactory(patient=patient, label="far away", next_review_date=today + timedelta(days=200))
    LesionFactory(patient=PatientFactory(clinic=other_clinic), label="foreign", next_review_date=today)
    response = client_logged_in.get(reverse("recall_export"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:2] == ["patient_identifier", "patient_name"]
    assert len(rows) == 2
    assert rows[1][0] == "'+MRN-1" and rows[1][1].startswith("'=") and rows[1][3] == "'@evil"
    assert rows[1][6] == "overdue"
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert AuditEvent.objects.filter(object_type="Clinic", detail__export="recalls").exists()
    later = client_logged_in.get(reverse("recall_export"), {"until": (today + timedelta(days=365)).isoformat()})
    assert len(list(csv.reader(io.StringIO(later.content.decode())))) == 3
    assert client_logged_in.get(reverse("recall_export"), {"clinic": other_clinic.pk}).status_code == 404


@pytest.mark.django_db
def test_the_recall_list_is_due_monitored_lesions_by_date_then_patient(clinic, other_clinic,
                                                                      django_assert_num_queries):
    from lesions.models import Lesion
    from lesions.selectors import recall_list

    until = date(2026, 6, 30)
    zoe, adam = PatientFactory(clinic=clinic, name="Zoe Zed"), PatientFactory(clinic=clinic, name="Adam Ant")
    later = LesionFactory(patient=adam, next_review_date=date(2026, 6, 30))
    zoe_first = LesionFactory(patient=zoe, next_review_date=date(2026, 6, 1))
    adam_same_day = LesionFactory(patient=adam, next_review_date=date(2026, 6, 1))
    adam_same_day_2 = LesionFactory(patient=adam, next_review_date=date(2026, 6, 1))
    overdue = LesionFactory(patient=zoe, next_review_date=date(2025, 12, 1))
    LesionFactory(patient=zoe, next_review_date=date(2026, 7, 1))  # after `until`
    LesionFactory(patient=zoe, next_review_date=None)  # no review booked
    LesionFactory(patient=zoe, next_review_date=date(2026, 6, 2), status=Lesion.Status.EXCISED)  # no longer monitored
    LesionFactory(patient=PatientFactory(clinic=other_clinic), next_review_date=date(2026, 6, 1))
    # An update writes a new row version after the others: the database's own order is no longer the
    # order of creation, so only the explicit tie-break (id) keeps same-day, same-patient recalls stable.
    Lesion.objects.filter(pk=adam_same_day.pk).update(label="Left calf")
    with django_assert_num_queries(1):  # the letters' CSV reads each lesion's patient without a query each
        due = [(lesion.pk, lesion.patient.name) for lesion in recall_list(clinic.pk, until)]
    assert [pk for pk, _ in due] == [overdue.pk, adam_same_day.pk, adam_same_day_2.pk, zoe_first.pk, later.pk]


@pytest.mark.django_db
def test_same_day_recalls_of_one_patient_come_in_order_of_entry(clinic):
    from lesions.selectors import recall_list

    patient = PatientFactory(clinic=clinic, name="Ann Same")
    lesions = [LesionFactory(patient=patient, next_review_date=date(2026, 6, 1)) for _ in range(3)]
    scramble_table_order(lesions)
    read_in_table_order()
    assert list(recall_list(clinic.pk, date(2026, 6, 30))) == lesions
