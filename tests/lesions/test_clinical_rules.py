"""The clinical rules page is generated from the constants the code uses (#17 item 7)."""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from lesions import stage_note, staging
from lesions.forms import DERMOSCOPIC_STRUCTURES
from ml import features

pytestmark = pytest.mark.django_db


def rules_page(client) -> str:
    response = client.get(reverse("clinical_rules"))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_rules_page_is_linked_from_the_footer_and_needs_login(client, client_logged_in):
    footer = re.search(r"<footer.*?</footer>", client_logged_in.get("/").content.decode(), re.S).group(0)
    assert reverse("clinical_rules") in footer
    assert client.get(reverse("clinical_rules")).status_code == 302


def test_rules_page_lists_every_rule_with_its_source(client_logged_in):
    content = rules_page(client_logged_in)
    for source in ("Gershenwald", "Stolz", "Nachbar", "Menzies", "Argenziano", "Kittler"):
        assert source in content
    for text in stage_note.STAGE_DESCRIPTIONS.values():
        assert text in content
    for _, label in DERMOSCOPIC_STRUCTURES:
        assert label in content
    assert stage_note.EXCISE_GROWTH in content and stage_note.MONITOR_ALTERNATIVE in content
    assert "T1a: under 0.8 mm" in content and "nearest 0.1 mm" in content
    assert "TDS = 1.3·A + 0.1·B + 0.5·C + 0.5·D" in content
    # Every cell of the stage table (Table 3) is on the page.
    for t, groups in staging.STAGE_III_GROUPS.items():
        row = re.search(rf'<th scope="row">{t}</th>(.*?)</tr>', content, re.S).group(1)
        cells = re.findall(r"<td>(.*?)</td>", row)
        expected = [staging.STAGE_NODE_NEGATIVE_GROUPS.get(t, "—")] + [
            next((g for g, ns in groups.items() if n in ns), "—") for n in staging.N_CATEGORIES[1:]]
        assert cells == expected, t


def test_rules_page_is_generated_from_the_constants_not_a_copy(client_logged_in, monkeypatch):
    monkeypatch.setattr(staging, "T1A_BELOW_MM", Decimal("0.7"))
    monkeypatch.setattr(features, "TDS_BENIGN_BELOW", 4.5)
    monkeypatch.setitem(stage_note.STAGE_DESCRIPTIONS, "IB", "changed description of IB")
    content = rules_page(client_logged_in)
    assert "T1a: under 0.7 mm" in content and "under 4.5 benign" in content
    assert "changed description of IB" in content
    # The code itself follows the same constant.
    assert staging.t_category(0.7, False) == "T1b"
