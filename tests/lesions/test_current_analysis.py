"""One definition of "the current analysis of a capture" (its newest queued analysis): the case
page, the image downloads and the status JSON all show the same one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from lesions import selectors, services
from lesions.models import Analysis, Capture
from tests.factories import lesion_image
from tests.support.heap_order import read_in_table_order, scramble_table_order

pytestmark = pytest.mark.django_db


def finish(analysis: Analysis, *, probability: float, overlay: bytes, queued_at, finished_at) -> Analysis:
    analysis.status = Analysis.Status.DONE
    analysis.probability, analysis.threshold = probability, 0.5
    analysis.overlay = default_storage.save(f"analyses/test-{analysis.pk}-overlay.png", ContentFile(overlay))
    analysis.features = {}
    analysis.stage_note = f"note of analysis {analysis.pk}"
    analysis.finished_at = finished_at
    analysis.save()
    Analysis.objects.filter(pk=analysis.pk).update(queued_at=queued_at)  # auto_now_add: set afterwards
    return analysis


@pytest.fixture
def two_done_analyses(lesion) -> tuple[Capture, Analysis, Analysis]:
    """The earlier-queued analysis finished last: 'newest by finish' and 'newest queued' disagree."""
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    now = timezone.now()
    older = finish(capture.analyses.get(), probability=0.11, overlay=b"older overlay",
                   queued_at=now - timedelta(hours=2), finished_at=now)
    newer = finish(Analysis.objects.create(capture=capture, model_version="seg-b+cls-b"), probability=0.77,
                   overlay=b"newer overlay", queued_at=now - timedelta(hours=1), finished_at=now - timedelta(minutes=50))
    return capture, older, newer


def test_page_images_and_status_json_show_the_same_current_analysis(client_logged_in, lesion, two_done_analyses):
    capture, older, newer = two_done_analyses
    assert selectors.current_analysis(capture) == newer
    assert selectors.captures_with_analysis(lesion)[0].analysis == newer
    page = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert "0.77" in page and f"note of analysis {newer.pk}" in page
    overlay = client_logged_in.get(reverse("capture_image", args=[capture.pk, "overlay"]))
    assert overlay.status_code == 200 and b"".join(overlay.streaming_content) == b"newer overlay"
    status = client_logged_in.get(reverse("lesion_statuses", args=[lesion.pk])).json()["analyses"]
    assert [row["id"] for row in status] == [newer.pk]


def test_while_a_reanalysis_waits_the_old_result_is_not_served_as_current(client_logged_in, lesion, two_done_analyses):
    capture, older, newer = two_done_analyses
    pending = Analysis.objects.create(capture=capture, model_version="seg-c+cls-c")
    assert selectors.current_analysis(capture) == pending
    assert client_logged_in.get(reverse("capture_image", args=[capture.pk, "overlay"])).status_code == 404
    row = client_logged_in.get(reverse("lesion_statuses", args=[lesion.pk])).json()["analyses"][0]
    # The page script reads these flags rather than comparing status strings of its own.
    assert row == {"id": pending.pk, "capture_id": capture.pk, "status": Analysis.Status.QUEUED, "label": "Queued",
                   "pending": True, "finished": False, "error": "", "probability": None}


def test_status_json_gives_each_captures_newest_queued_analysis(client_logged_in, lesion):
    first = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    second = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image((200, 150)))
    # Two re-analyses of the first capture, queued after its first analysis: the last one is current.
    Analysis.objects.create(capture=first, model_version="seg-b+cls-b")
    latest = Analysis.objects.create(capture=first, model_version="seg-c+cls-c")
    rows = {row["capture_id"]: row["id"]
            for row in client_logged_in.get(reverse("lesion_statuses", args=[lesion.pk])).json()["analyses"]}
    assert rows == {first.pk: latest.pk, second.pk: second.analyses.get().pk}


def test_captures_come_in_the_order_they_were_taken_and_analysis_for_finds_the_one_asked(lesion, clinician):
    now = timezone.now()
    today = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image(), taken_at=now)
    old = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image(),
                                  taken_at=now - timedelta(days=90))
    rows = selectors.captures_with_analysis(lesion)
    assert [(row.capture, row.analysis) for row in rows] == [(old, old.analyses.get()), (today, today.analyses.get())]
    for capture in (old, today):
        analysis = capture.analyses.get()
        assert selectors.analysis_for(clinician, analysis.pk) == analysis
    today.analyses.all().delete()  # an analysis removed in admin: the capture shows without one
    assert [row.analysis for row in selectors.captures_with_analysis(lesion)] == [old.analyses.get(), None]


def test_captures_taken_at_the_same_moment_come_in_order_of_entry(lesion):
    taken = timezone.now()
    captures = [services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image(), taken_at=taken)
                for _ in range(3)]
    scramble_table_order(captures)
    read_in_table_order()
    assert [row.capture for row in selectors.captures_with_analysis(lesion)] == captures


def test_status_json_gives_the_newest_queued_analysis_whatever_the_table_order(lesion):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    first = capture.analyses.get()
    second = Analysis.objects.create(capture=capture, model_version="seg-b+cls-b")
    newest = Analysis.objects.create(capture=capture, model_version="seg-c+cls-c")
    # Queued in the same instant: the highest id is the newest (lesions.models.NEWEST_FIRST).
    Analysis.objects.filter(capture=capture).update(queued_at=timezone.now())
    scramble_table_order([first, second, newest])
    read_in_table_order()
    assert [(row["capture_id"], row["id"]) for row in selectors.analysis_statuses(lesion)] == [(capture.pk, newest.pk)]
