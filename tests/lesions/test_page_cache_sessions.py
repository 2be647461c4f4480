"""The cached case page and patient page against writes committed by other database sessions
(web processes, workers and the sweep write at once): a write committed between the access
check's read and the generation's, or while the part is being built, shows on the next request."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from lesions import presentation
from tests.factories import LesionFactory, analysed
from tests.lesions.test_page_cache import main_part
from tests.lesions.test_worklist_cache_sessions import backend_pid, rename_elsewhere, rename_while_rendering

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("data_generation_kept")]


@pytest.fixture
def scored(patient):
    lesion = LesionFactory(patient=patient, label="Scored mole")
    analysed(lesion, probability=0.61)
    return lesion


def test_a_write_between_the_access_check_and_the_generation_is_not_cached_stale(client_logged_in, scored,
                                                                                   monkeypatch):
    """The lesion is read by the access check before the generation: a rename committed in
    between must not be kept, under the newer generation, with the older label."""
    url = reverse("lesion_case", args=[scored.pk])
    generation = presentation.data_generation
    pid = backend_pid(connection.connection)

    def write_then_read(clinic_id):
        rename_elsewhere(scored, "Renamed meanwhile", away_from_pid=pid)
        return generation(clinic_id)

    monkeypatch.setattr(presentation, "data_generation", write_then_read)
    main_part(client_logged_in, url)
    monkeypatch.setattr(presentation, "data_generation", generation)
    assert "<h1>Renamed meanwhile</h1>" in main_part(client_logged_in, url)


@pytest.mark.parametrize("page", ["lesion_case", "patient_detail"])
def test_a_write_committed_while_the_part_is_built_shows_on_the_next_request(client_logged_in, scored, page,
                                                                               monkeypatch):
    url = reverse(page, args=[scored.pk if page == "lesion_case" else scored.patient_id])
    render = presentation.render_to_string
    rename_while_rendering(monkeypatch, scored, "Scored mole")
    assert "Scored mole" in main_part(client_logged_in, url)
    monkeypatch.setattr(presentation, "render_to_string", render)
    assert "Renamed while building" in main_part(client_logged_in, url)
