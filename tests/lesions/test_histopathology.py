"""The histopathology form records only what was assessed, refuses what cannot be true, and
re-renders its errors without building a note from the unsaved submission (issue #17)."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from lesions.forms import HistopathologyForm
from lesions.models import Histopathology

pytestmark = pytest.mark.django_db


def post(client, lesion, **fields):
    data = {"sentinel_node": "not_done", "n_category": "", "m_category": "", "primary_tumour": "", "ldh": ""}
    data.update(fields)
    return client.post(reverse("lesion_histopathology", args=[lesion.pk]), data)


def test_blank_form_starts_with_n_and_m_not_assessed():
    form = HistopathologyForm()
    html = form.as_div()
    for field in ("n_category", "m_category"):
        selected = re.search(rf'<select name="{field}".*?</select>', html, re.S).group(0)
        chosen = re.findall(r'<option value="([^"]*)"[^>]*selected', selected)
        assert chosen == [""], (field, chosen)
        assert "Not assessed" in selected


def test_saving_thickness_alone_records_no_nodes_or_metastasis_and_no_stage(client_logged_in, lesion):
    response = post(client_logged_in, lesion, breslow_mm="1.5")
    assert response.status_code == 302
    histo = Histopathology.objects.get(lesion=lesion)
    assert (histo.n_category, histo.m_category) == ("", "")
    content = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert "T2a" in content and "recorded as 1.5 mm" in content
    assert "stage group is not computed" in content
    assert "N category (regional lymph nodes)" in content and "M category (distant metastasis)" in content
    assert "stage IB" not in content


@pytest.mark.parametrize("measured,recorded,t", [("0.75", "0.8", "T1b"), ("1.04", "1.0", "T1b"),
                                                 ("2.05", "2.1", "T3a")])
def test_case_page_shows_the_recorded_thickness(client_logged_in, lesion, measured, recorded, t):
    assert post(client_logged_in, lesion, breslow_mm=measured, n_category="N0", m_category="M0").status_code == 302
    content = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert f"recorded as {recorded} mm" in content and f"({t} N0 M0)" in content


@pytest.mark.parametrize("n", ["N1a", "N2a", "N3a"])
@pytest.mark.parametrize("sentinel", ["not_done", "negative"])
def test_clinically_occult_nodes_without_a_positive_sentinel_biopsy_are_refused(client_logged_in, lesion, n,
                                                                                 sentinel):
    response = post(client_logged_in, lesion, breslow_mm="1.2", sentinel_node=sentinel, n_category=n,
                    m_category="M0")
    assert response.status_code == 400
    assert "sentinel node biopsy" in response.content.decode()
    assert not Histopathology.objects.filter(lesion=lesion).exists()


def test_clinically_occult_nodes_with_a_positive_sentinel_biopsy_are_staged(client_logged_in, lesion):
    assert post(client_logged_in, lesion, breslow_mm="0.6", sentinel_node="positive", n_category="N1a",
                m_category="M0").status_code == 302
    content = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert "stage IIIA (T1a N1a M0)" in content


def test_thickness_not_assessable_is_tx(client_logged_in, lesion):
    assert post(client_logged_in, lesion, primary_tumour="TX", n_category="N0", m_category="M1b",
                ldh="elevated").status_code == 302
    content = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert "stage IV (TX N0 M1b(1))" in content


def test_tx_refuses_a_thickness(client_logged_in, lesion):
    response = post(client_logged_in, lesion, primary_tumour="TX", breslow_mm="1.0", n_category="N0",
                    m_category="M0")
    assert response.status_code == 400
    assert "cannot be assessed" in response.content.decode()


def test_unknown_primary_is_staged_from_the_t0_rows(client_logged_in, lesion):
    assert post(client_logged_in, lesion, primary_tumour="T0", n_category="N1b", m_category="M0").status_code == 302
    content = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert "stage IIIB (T0 N1b M0)" in content


def test_ldh_suffix_on_distant_metastasis(client_logged_in, lesion):
    assert post(client_logged_in, lesion, breslow_mm="3.0", n_category="N0", m_category="M1d",
                ldh="normal").status_code == 302
    content = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert "stage IV (T3a N0 M1d(0))" in content and "central nervous system" in content


def test_form_with_errors_has_a_focused_error_summary_and_no_note_from_the_unsaved_submission(
        client_logged_in, lesion):
    response = post(client_logged_in, lesion, n_category="N0", m_category="M0")  # no thickness
    assert response.status_code == 400
    content = response.content.decode()
    title = re.search(r"<title>(.*?)</title>", content, re.S).group(1)
    assert title.strip().startswith("Error")
    summary = re.search(r'<div[^>]*data-role="error-summary"[^>]*>.*?</div>', content, re.S)
    assert summary is not None
    assert 'role="alert"' in summary.group(0) and 'tabindex="-1"' in summary.group(0)
    assert "Breslow thickness is needed" in summary.group(0)
    assert content.index('data-role="error-summary"') < content.index('data-role="lesion-stage-note"')
    assert "Histopathology recorded" not in content
    assert "cannot be computed" not in content
    assert not Histopathology.objects.filter(lesion=lesion).exists()


def test_invalid_edit_keeps_the_saved_stage_in_the_note(client_logged_in, lesion):
    assert post(client_logged_in, lesion, breslow_mm="1.5", n_category="N0", m_category="M0").status_code == 302
    response = post(client_logged_in, lesion, breslow_mm="", n_category="N1a", m_category="M0")
    assert response.status_code == 400
    content = response.content.decode()
    assert "stage IB (T2a N0 M0)" in content
    histo = Histopathology.objects.get(lesion=lesion)
    assert (str(histo.breslow_mm), histo.n_category) == ("1.50", "N0")


def test_the_model_refuses_occult_nodes_without_a_positive_sentinel_biopsy(lesion):
    histo = Histopathology(lesion=lesion, breslow_mm="1.2", n_category="N2a", m_category="M0", sentinel_node="not_done")
    with pytest.raises(ValidationError) as raised:
        histo.full_clean()
    assert "sentinel node biopsy" in " ".join(raised.value.message_dict["n_category"])
    histo.sentinel_node = "positive"
    histo.full_clean()


def test_a_second_submission_edits_the_saved_histopathology(client_logged_in, lesion):
    assert post(client_logged_in, lesion, breslow_mm="1.5", n_category="N0", m_category="M0").status_code == 302
    saved = Histopathology.objects.get(lesion=lesion)
    assert post(client_logged_in, lesion, breslow_mm="2.5", n_category="N0", m_category="M0").status_code == 302
    edited = Histopathology.objects.get(lesion=lesion)
    assert (edited.pk, str(edited.breslow_mm)) == (saved.pk, "2.50")
