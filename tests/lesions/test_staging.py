"""AJCC 8th edition: every row of the pathological stage-group table and the T boundaries."""

from __future__ import annotations

import pytest

from lesions.staging import N_CATEGORIES, StagingError, stage, stage_group, t_category

# Gershenwald et al., CA Cancer J Clin 2017, Table 3 (pathological prognostic stage groups).
NODE_NEGATIVE = [("Tis", "0"), ("T1a", "IA"), ("T1b", "IA"), ("T2a", "IB"), ("T2b", "IIA"), ("T3a", "IIA"),
                 ("T3b", "IIB"), ("T4a", "IIB"), ("T4b", "IIC")]
STAGE_III = {
    # T:        N1a     N1b     N1c     N2a     N2b     N2c     N3a     N3b     N3c
    "T0":  [None, "IIIB", "IIIB", None, "IIIC", "IIIC", None, "IIIC", "IIIC"],
    "T1a": ["IIIA", "IIIB", "IIIB", "IIIA", "IIIB", "IIIC", "IIIC", "IIIC", "IIIC"],
    "T1b": ["IIIA", "IIIB", "IIIB", "IIIA", "IIIB", "IIIC", "IIIC", "IIIC", "IIIC"],
    "T2a": ["IIIA", "IIIB", "IIIB", "IIIA", "IIIB", "IIIC", "IIIC", "IIIC", "IIIC"],
    "T2b": ["IIIB", "IIIB", "IIIB", "IIIB", "IIIB", "IIIC", "IIIC", "IIIC", "IIIC"],
    "T3a": ["IIIB", "IIIB", "IIIB", "IIIB", "IIIB", "IIIC", "IIIC", "IIIC", "IIIC"],
    "T3b": ["IIIC"] * 9,
    "T4a": ["IIIC"] * 9,
    "T4b": ["IIIC"] * 6 + ["IIID"] * 3,
}


@pytest.mark.parametrize("t,group", NODE_NEGATIVE)
def test_node_negative_stage_groups(t, group):
    assert stage_group(t, "N0", "M0") == group


@pytest.mark.parametrize("t,n,group", [(t, n, g) for t, row in STAGE_III.items()
                                        for n, g in zip(N_CATEGORIES[1:], row)])
def test_stage_three_table(t, n, group):
    if group is None:
        with pytest.raises(StagingError):
            stage_group(t, n, "M0")
    else:
        assert stage_group(t, n, "M0") == group


@pytest.mark.parametrize("m", ["M1a", "M1b", "M1c", "M1d"])
@pytest.mark.parametrize("t,n", [("T1a", "N0"), ("T4b", "N3c"), ("T0", "N1b")])
def test_any_distant_metastasis_is_stage_four(t, n, m):
    assert stage_group(t, n, m) == "IV"


@pytest.mark.parametrize("thickness,ulcerated,expected", [
    (0.79, False, "T1a"), (0.79, True, "T1b"),
    (0.8, False, "T1b"), (0.8, True, "T1b"),
    (1.0, False, "T1b"), (1.01, False, "T2a"), (1.01, True, "T2b"),
    (2.0, False, "T2a"), (2.01, False, "T3a"), (2.0, True, "T2b"), (2.01, True, "T3b"),
    (4.0, False, "T3a"), (4.01, False, "T4a"), (4.0, True, "T3b"), (4.01, True, "T4b"),
    (0.1, False, "T1a"), (12.0, True, "T4b"),
])
def test_t_category_boundaries(thickness, ulcerated, expected):
    assert t_category(thickness, ulcerated) == expected


def test_in_situ_and_missing_thickness():
    assert t_category(None, False, in_situ=True) == "Tis"
    with pytest.raises(StagingError):
        t_category(None, False)
    with pytest.raises(StagingError):
        stage_group("T1a", "N9", "M0")


def test_stage_combines_the_categories():
    result = stage(breslow_mm=2.5, ulcerated=True, n="N1a", m="M0")
    assert (result.t, result.n, result.m, result.group) == ("T3b", "N1a", "M0", "IIIC")
