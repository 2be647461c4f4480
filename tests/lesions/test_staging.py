"""AJCC 8th edition: every row of the pathological stage-group table and the T boundaries."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lesions.staging import (
    N_CATEGORIES,
    NODES_FOUND_BY_SENTINEL_BIOPSY,
    PRIMARY_NOT_ASSESSABLE,
    PRIMARY_UNKNOWN,
    StagingError,
    recorded_breslow_mm,
    stage,
    stage_group,
    t_category,
)

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


# Breslow thickness is recorded to the nearest 0.1 mm (half up) before T is assigned
# (Gershenwald et al. 2017, Table 1 footnote): 0.75-0.84 mm is recorded as 0.8 mm, so T1b.
@pytest.mark.parametrize("thickness,ulcerated,expected", [
    (0.74, False, "T1a"), (0.74, True, "T1b"),
    (0.75, False, "T1b"), (0.75, True, "T1b"),
    (0.79, False, "T1b"), (0.79, True, "T1b"),
    (0.8, False, "T1b"), (0.8, True, "T1b"),
    (0.84, False, "T1b"), (0.84, True, "T1b"),
    (1.0, False, "T1b"), (1.04, False, "T1b"), (1.04, True, "T1b"),
    (1.05, False, "T2a"), (1.05, True, "T2b"),
    (2.0, False, "T2a"), (2.04, False, "T2a"), (2.04, True, "T2b"),
    (2.05, False, "T3a"), (2.05, True, "T3b"),
    (4.0, False, "T3a"), (4.04, False, "T3a"), (4.04, True, "T3b"),
    (4.05, False, "T4a"), (4.05, True, "T4b"),
    (0.1, False, "T1a"), (12.0, True, "T4b"),
])
def test_t_category_boundaries_after_rounding(thickness, ulcerated, expected):
    assert t_category(thickness, ulcerated) == expected
    assert t_category(Decimal(str(thickness)), ulcerated) == expected


@pytest.mark.parametrize("measured,recorded", [
    ("0.74", "0.7"), ("0.75", "0.8"), ("0.84", "0.8"), ("1.04", "1.0"), ("1.05", "1.1"), ("2.05", "2.1"),
    ("4.04", "4.0"), ("4.05", "4.1"), (0.75, "0.8"), (2.05, "2.1"),
])
def test_breslow_is_recorded_to_the_nearest_tenth_half_up(measured, recorded):
    assert recorded_breslow_mm(measured) == Decimal(recorded)


def test_thickness_that_cannot_be_assessed_is_tx():
    assert t_category(None, False, primary=PRIMARY_NOT_ASSESSABLE) == "TX"
    with pytest.raises(StagingError, match="TX"):
        stage_group("TX", "N0", "M0")
    # Any T with distant metastasis is stage IV (Table 3).
    assert stage_group("TX", "N1b", "M1b") == "IV"


def test_unknown_primary_reaches_the_t0_rows():
    assert t_category(None, False, primary=PRIMARY_UNKNOWN) == "T0"
    result = stage(breslow_mm=None, ulcerated=False, n="N1b", m="M0", primary=PRIMARY_UNKNOWN)
    assert (result.t, result.group) == ("T0", "IIIB")
    assert stage(breslow_mm=None, ulcerated=False, n="N3c", m="M0", primary=PRIMARY_UNKNOWN).group == "IIIC"
    with pytest.raises(StagingError):
        stage_group("T0", "N0", "M0")


@pytest.mark.parametrize("m,ldh,shown", [
    ("M1a", "normal", "M1a(0)"), ("M1b", "elevated", "M1b(1)"), ("M1c", "normal", "M1c(0)"),
    ("M1d", "elevated", "M1d(1)"), ("M1d", "", "M1d"), ("M0", "elevated", "M0"),
])
def test_distant_metastasis_carries_the_ldh_suffix(m, ldh, shown):
    result = stage(breslow_mm=1.2, ulcerated=False, n="N0", m=m, ldh=ldh)
    assert result.m_display == shown


@pytest.mark.parametrize("n", ["N1a", "N2a", "N3a"])
def test_clinically_occult_nodes_need_a_sentinel_node_biopsy(n):
    assert n in NODES_FOUND_BY_SENTINEL_BIOPSY
    assert set(NODES_FOUND_BY_SENTINEL_BIOPSY) == {"N1a", "N2a", "N3a"}


def test_in_situ_and_missing_thickness():
    assert t_category(None, False, in_situ=True) == "Tis"
    with pytest.raises(StagingError):
        t_category(None, False)
    with pytest.raises(StagingError):
        stage_group("T1a", "N9", "M0")


@pytest.mark.parametrize("n,m,missing", [("", "M0", "N category"), ("N0", "", "M category"),
                                         ("", "", "N category")])
def test_no_stage_group_from_categories_that_were_not_assessed(n, m, missing):
    with pytest.raises(StagingError, match=missing):
        stage(breslow_mm=1.5, ulcerated=False, n=n, m=m)


def test_stage_combines_the_categories():
    result = stage(breslow_mm=2.5, ulcerated=True, n="N1a", m="M0")
    assert (result.t, result.n, result.m, result.group) == ("T3b", "N1a", "M0", "IIIC")


# What the clinician reads when no stage group follows (the histopathology form and the report's
# note show these reasons verbatim): each names the finding that is missing or wrong.
@pytest.mark.parametrize("call,reason", [
    (lambda: t_category(None, False), "Breslow thickness is needed for the T category"),
    (lambda: t_category(-0.2, True), "Breslow thickness cannot be negative"),
    (lambda: stage_group("T1a", "", "M0"), "the N category (regional lymph nodes) has not been assessed"),
    (lambda: stage_group("T1a", "N0", ""), "the M category (distant metastasis) has not been assessed"),
    (lambda: stage_group("T1a", "N9", "M0"), "unknown N category 'N9'"),
    (lambda: stage_group("T1a", "N0", "M2"), "unknown M category 'M2'"),
    (lambda: stage_group("TX", "N0", "M0"), "the primary tumour's thickness could not be assessed (TX): "
                                            "without distant metastasis there is no stage group"),
    (lambda: stage_group("TX", "N1a", "M0"), "the primary tumour's thickness could not be assessed (TX): "
                                             "without distant metastasis there is no stage group"),
    (lambda: stage_group("T0", "N0", "M0"), "T0 N0 M0 has no stage group"),
    (lambda: stage_group("T0", "N1a", "M0"), "T0 N1a M0 has no stage group"),
    # Table 3 has no row for in situ melanoma with nodal disease.
    (lambda: stage_group("Tis", "N1a", "M0"), "Tis N1a M0 has no stage group"),
    (lambda: stage(breslow_mm=1.5, ulcerated=False, n="", m="M0"),
     "the N category (regional lymph nodes) has not been assessed"),
    (lambda: stage(breslow_mm=1.5, ulcerated=False, n="N0", m=""),
     "the M category (distant metastasis) has not been assessed"),
    (lambda: stage(breslow_mm=1.5, ulcerated=False, n="", m=""),
     "the N category (regional lymph nodes) and the M category (distant metastasis) have not been assessed"),
])
def test_each_reason_for_no_stage_group_names_what_is_missing(call, reason):
    with pytest.raises(StagingError) as raised:
        call()
    assert str(raised.value) == reason


def test_an_invasive_melanoma_recorded_as_0_0_mm_is_t1a():
    # Table 1: T1a is < 0.8 mm; 0.04 mm is recorded as 0.0 mm and is still a measured invasive tumour.
    assert t_category(Decimal("0.04"), False) == "T1a"
    assert t_category(0, True) == "T1b"
    assert stage(breslow_mm=0, ulcerated=False, n="N0", m="M0").breslow_recorded_mm == Decimal("0.0")


@pytest.mark.parametrize("kwargs,t", [
    ({"in_situ": True}, "Tis"), ({"primary": PRIMARY_NOT_ASSESSABLE}, "TX"), ({"primary": PRIMARY_UNKNOWN}, "T0"),
])
def test_a_thickness_typed_in_is_not_recorded_when_the_primary_was_not_measured(kwargs, t):
    # In situ, not assessable or unknown primary: no Breslow thickness belongs to the stage, even if
    # one was entered; the stage follows the primary's category, not the number.
    result = stage(breslow_mm=2.5, ulcerated=True, n="N1b", m="M1a", **kwargs)
    assert (result.t, result.breslow_recorded_mm, result.group) == (t, None, "IV")


def test_in_situ_melanoma_is_stage_0_whatever_thickness_was_typed():
    result = stage(breslow_mm=3.0, ulcerated=False, n="N0", m="M0", in_situ=True)
    assert (result.t, result.group, result.breslow_recorded_mm) == ("Tis", "0", None)
