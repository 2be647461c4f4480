"""Body map: the static figures are the region table; sites derive from points; the form agrees."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from django.urls import reverse

from lesions import body_map
from lesions.models import BodySite, Lesion

STATIC = Path(__file__).resolve().parents[2] / "static" / "img"


@pytest.mark.parametrize("view", ["front", "back"])
def test_static_figures_are_drawn_from_the_region_table(view):
    assert (STATIC / f"body-{view}.svg").read_text() == body_map.render_svg(view)
    root = ET.fromstring((STATIC / f"body-{view}.svg").read_text())
    sites = {el.get("data-site") for el in root}
    assert sites <= set(BodySite.values)


@pytest.mark.parametrize("view, x, y, site", [
    ("front", 0.5, 0.08, "head/neck"),
    ("front", 0.5, 0.33, "anterior torso"),
    ("back", 0.5, 0.33, "posterior torso"),
    ("front", 0.32, 0.33, "lateral torso"),     # x = 64 of 200: the right-side strip
    ("front", 0.5, 0.525, "oral/genital"),
    ("back", 0.5, 0.525, "posterior torso"),    # buttocks
    ("front", 0.235, 0.56, "palms/soles"),      # anatomical position: palms face forward
    ("back", 0.235, 0.56, "upper extremity"),   # back of the hand
    ("back", 0.4, 0.95, "palms/soles"),         # soles seen from behind
    ("front", 0.4, 0.95, "lower extremity"),    # dorsum of the foot
    ("front", 0.23, 0.4, "upper extremity"),
    ("front", 0.4, 0.75, "lower extremity"),
])
def test_site_from_point(view, x, y, site):
    assert body_map.region_at(view, x, y).site == site


def test_points_off_the_body_have_no_region():
    assert body_map.region_at("front", 0.02, 0.02) is None
    assert body_map.region_at("front", 0.5, 0.8) is None  # between the legs
    assert body_map.region_at("side", 0.5, 0.3) is None


def test_marker_labels_are_escaped():
    svg = body_map.render_inline_svg("front", [body_map.Marker(0.5, 0.3, "/x/", '<script>"', "score-low")])
    assert "<script>" not in svg and "&lt;script&gt;" in svg


@pytest.mark.django_db
def test_the_point_decides_the_site_even_against_the_select(client_logged_in, patient):
    response = client_logged_in.post(reverse("lesion_create", args=[patient.pk]), {
        "label": "Back mole", "body_site": "head/neck", "status": "monitoring", "notes": "",
        "body_map_view": "back", "body_map_x": "0.5", "body_map_y": "0.33"})
    assert response.status_code == 302
    lesion = Lesion.objects.get(label="Back mole")
    assert (lesion.body_site, lesion.body_map_view) == ("posterior torso", "back")
    assert lesion.body_map_x == pytest.approx(0.5)


@pytest.mark.django_db
@pytest.mark.parametrize("point, message", [
    ({"body_map_view": "front", "body_map_x": "0.02", "body_map_y": "0.02"}, "not on the body"),
    ({"body_map_view": "front", "body_map_x": "0.5"}, "incomplete"),
    ({"body_map_view": "front", "body_map_x": "1.5", "body_map_y": "0.3"}, "outside the figure"),
])
def test_bad_points_are_refused_with_a_message(client_logged_in, patient, point, message):
    response = client_logged_in.post(reverse("lesion_create", args=[patient.pk]), {
        "label": "Nowhere", "body_site": "unknown", "status": "monitoring", **point})
    assert response.status_code == 200 and message in response.content.decode()
    assert not Lesion.objects.filter(label="Nowhere").exists()


@pytest.mark.django_db
def test_without_a_point_the_select_list_alone_works(client_logged_in, patient):
    client_logged_in.post(reverse("lesion_create", args=[patient.pk]), {
        "label": "Keyboard", "body_site": "nail", "status": "monitoring"})
    assert Lesion.objects.get(label="Keyboard").body_site == "nail"


@pytest.mark.django_db
def test_patient_page_shows_markers_with_status_and_score(client_logged_in, patient):
    from tests.factories import LesionFactory

    placed = LesionFactory(patient=patient, label="Placed <b>", body_map_view="front", body_map_x=0.5,
                           body_map_y=0.3)
    LesionFactory(patient=patient, label="Unplaced")
    content = client_logged_in.get(reverse("patient_detail", args=[patient.pk])).content.decode()
    assert f'href="{reverse("lesion_case", args=[placed.pk])}" class="marker score-none"' in content
    assert "Placed &lt;b&gt; (Monitoring, not analysed yet)" in content
    assert "Not on the map:" in content and "Unplaced" in content
