"""The wording of the notes, checked against the sources (issue #17 items 2-4)."""

from __future__ import annotations

import pytest

from lesions import notes, stage_note
from lesions.stage_note import STAGE_DESCRIPTIONS, ModelFigures, image_note, score_name
from lesions.staging import STAGE_III_GROUPS, STAGE_NODE_NEGATIVE_GROUPS
from ml.contracts import OperatingPoint, read_model_manifest

FULL = ModelFigures(threshold=0.23, sensitivity=0.92, specificity=0.64, calibrated=False,
                           sensitivity_ci95=(0.86, 0.96), specificity_ci95=(0.61, 0.67), n_images=1110,
                           n_melanomas=118, melanomas_below_threshold=9)


def test_every_stage_group_of_the_table_has_a_description():
    groups = set(STAGE_NODE_NEGATIVE_GROUPS.values()) | {g for row in STAGE_III_GROUPS.values() for g in row} | {"IV"}
    assert groups == set(STAGE_DESCRIPTIONS)


@pytest.mark.parametrize("group", ["IB", "IIA"])
def test_ib_and_iia_say_over_one_to_two_mm(group):
    assert ">1.0–2.0 mm" in STAGE_DESCRIPTIONS[group]


def test_iiia_names_t1a_to_t2a_with_one_to_three_occult_nodes():
    text = STAGE_DESCRIPTIONS["IIIA"]
    assert "T1a–T2a" in text and "1–3 clinically occult" in text and "sentinel node biopsy" in text
    # Table 3: IIIA is exactly T1a/T1b/T2a with N1a/N2a.
    rows = {(t, n) for t, groups in STAGE_III_GROUPS.items() for n in groups.get("IIIA", ())}
    assert rows == {(t, n) for t in ("T1a", "T1b", "T2a") for n in ("N1a", "N2a")}


def test_iiid_includes_n3_with_in_transit_satellite_or_microsatellite_disease():
    text = STAGE_DESCRIPTIONS["IIID"]
    assert "N3" in text and "in-transit, satellite or microsatellite" in text and "T4b" in text
    assert STAGE_III_GROUPS["T4b"]["IIID"] == ("N3a", "N3b", "N3c")


def test_iv_names_the_central_nervous_system_and_non_regional_nodes():
    text = STAGE_DESCRIPTIONS["IV"]
    assert "central nervous system" in text and "non-regional nodes" in text and "CNS" not in text


def test_score_is_a_probability_only_when_calibrated():
    assert score_name(True) == "melanoma probability"
    assert score_name(False) == "melanoma score (not a probability)"
    assert score_name(None) == "melanoma score (not a probability)"
    assert "probability 0.40" not in image_note(probability=0.4, operating_point=FULL)
    assert image_note(probability=0.4, operating_point=FULL).startswith("Melanoma score (not a probability) 0.40")
    calibrated = ModelFigures(threshold=0.23, calibrated=True)
    assert image_note(probability=0.4, operating_point=calibrated).startswith("Melanoma probability 0.40")


def test_model_figures_come_with_their_data_and_confidence_intervals():
    note = image_note(probability=0.4, operating_point=FULL)
    assert "found 92% of melanomas (sensitivity, 95% CI 86%–96%)" in note
    assert "with 64% specificity (95% CI 61%–67%)" in note
    assert "measured on 1110 dermoscopic research test images (118 melanomas), not on this clinic's patients" in note
    assert "does not assess basal cell or squamous cell carcinoma" in note


def test_missing_figures_are_not_invented():
    bare = ModelFigures(threshold=0.23)
    note = image_note(probability=0.1, operating_point=bare)
    assert "%" not in note and "CI" not in note
    assert "test figures at this threshold are not recorded" in note and "sensitivity" not in note
    assert "A score below the threshold does not exclude melanoma." in note
    no_ci = ModelFigures(threshold=0.23, sensitivity=0.9, specificity=0.6)
    note = image_note(probability=0.4, operating_point=no_ci)
    assert "90% of melanomas" in note and "CI" not in note and "held-out dermoscopic research test images" in note


def test_below_threshold_does_not_exclude_melanoma_and_counts_the_missed_test_melanomas():
    note = image_note(probability=0.1, operating_point=FULL)
    assert "does not exclude melanoma: 9 of the 118 test melanomas scored below it" in note
    assert "exclude melanoma" not in image_note(probability=0.5, operating_point=FULL)


def test_growth_suggests_excision_never_more_monitoring():
    for probability in (0.05, 0.5):
        advice = stage_note.suggested_next_step(probability, 0.23, None, growing=True)
        assert "excision" in advice
        assert "short-term" not in advice.lower() and "routine" not in advice.lower()
        assert "not further monitoring" in advice


def test_monitoring_is_offered_only_for_flat_lesions_without_criteria_with_excise_if_any_change():
    advice = stage_note.suggested_next_step(0.5, 0.23, None, growing=False)
    assert "about 3 months" in advice and "flat lesion without melanoma-specific dermoscopic criteria" in advice
    assert "excise if any change" in advice
    assert "monitoring" not in stage_note.suggested_next_step(0.5, 0.23, "highly suspicious", growing=False)


def test_stage_needs_histopathology_is_worded_as_a_condition():
    note = image_note(probability=0.1, operating_point=FULL)
    assert "If this lesion proves to be melanoma, its stage needs histopathology" in note
    assert "A melanoma stage cannot be determined from an image" not in note


def test_figures_read_the_manifest_fields_and_say_less_when_absent():
    extra = {"n_images": 500, "n_melanomas": 80, "sensitivity_ci95": [0.81, 0.95], "specificity_ci95": [0.65, 0.74],
             "melanomas_below_threshold": 8, "calibrated": True}
    point = OperatingPoint(threshold=0.3, sensitivity=0.9, specificity=0.7, extra=extra)
    assert ModelFigures.from_point(point) == ModelFigures(
        threshold=0.3, sensitivity=0.9, specificity=0.7, calibrated=True, sensitivity_ci95=(0.81, 0.95),
        specificity_ci95=(0.65, 0.74), n_images=500, n_melanomas=80, melanomas_below_threshold=8)
    assert ModelFigures.from_point(OperatingPoint(threshold=0.3)) == ModelFigures(threshold=0.3)
    # "calibrated" must be literally true: a string or a missing key is not a calibration.
    assert not ModelFigures.from_point(OperatingPoint(threshold=0.3, extra={"calibrated": "yes"})).calibrated
    # The stored operating point survives the JSON round trip with its extra figures.
    assert ModelFigures.from_point(OperatingPoint.from_dict(point.as_dict())).n_melanomas == 80


def test_the_worker_stores_whether_the_model_is_calibrated(settings):
    manifest = read_model_manifest(settings.ML_MODELS_DIR)
    stored = notes.point_with_calibration(manifest).as_dict()
    assert stored["calibrated"] is (manifest.classifier.get("calibrated") is True)


def test_the_pathology_note_gives_the_stage_its_tnm_the_primary_and_the_description():
    from lesions.staging import stage

    result = stage(breslow_mm=1.46, ulcerated=True, n="N0", m="M0")
    assert stage_note.pathology_note(result, ulcerated=True).split("\n") == [
        "AJCC 8th edition pathological stage IIA (T2b N0 M0).",
        "T2b: Breslow thickness recorded as 1.5 mm, with ulceration.",
        STAGE_DESCRIPTIONS["IIA"],
        "Stage from the recorded histopathology; confirm against the pathology report and MDT review.",
    ]


def test_the_pathology_note_says_without_ulceration_unless_told_and_shows_ldh():
    from lesions.staging import stage

    result = stage(breslow_mm=1.5, ulcerated=False, n="N1a", m="M1c", ldh="elevated")
    lines = stage_note.pathology_note(result).split("\n")
    assert lines[:2] == ["AJCC 8th edition pathological stage IV (T2a N1a M1c(1)).",
                         "T2a: Breslow thickness recorded as 1.5 mm, without ulceration."]


@pytest.mark.parametrize("t,primary", [("TX", "TX: the primary tumour's thickness could not be assessed"),
                                       ("T0", "T0: no evidence of a primary tumour"),
                                       ("Tis", "Tis: melanoma in situ")])
def test_the_pathology_note_names_a_primary_that_was_not_measured(t, primary):
    from lesions.staging import Stage

    note = stage_note.pathology_note(Stage(t=t, n="N1b", m="M1a", group="IV"))
    assert note.split("\n")[1] == f"{primary}."


def test_an_incomplete_histopathology_says_what_is_known_and_what_is_missing():
    assert stage_note.pathology_incomplete_note("the N category (regional lymph nodes) has not been assessed",
                                                t="T3a", breslow_recorded_mm="2.4") == (
        "Histopathology recorded. T3a: Breslow thickness recorded as 2.4 mm, without ulceration. The stage group "
        "is not computed: the N category (regional lymph nodes) has not been assessed. Record the missing findings "
        "to stage the melanoma.")
    assert stage_note.pathology_incomplete_note("x", t="T3b", breslow_recorded_mm="2.4", ulcerated=True) == (
        "Histopathology recorded. T3b: Breslow thickness recorded as 2.4 mm, with ulceration. The stage group "
        "is not computed: x. Record the missing findings to stage the melanoma.")
    # Without a T category nothing is said about the primary.
    assert stage_note.pathology_incomplete_note("Breslow thickness is needed for the T category") == (
        "Histopathology recorded. The stage group is not computed: Breslow thickness is needed for the T category. "
        "Record the missing findings to stage the melanoma.")


@pytest.mark.parametrize("below,melanomas", [(None, 118), (9, None), (None, None)])
def test_below_threshold_without_both_counts_states_only_that_melanoma_is_not_excluded(below, melanomas):
    figures = ModelFigures(threshold=0.23, n_melanomas=melanomas, melanomas_below_threshold=below)
    assert stage_note.below_threshold_sentence(figures) == "A score below the threshold does not exclude melanoma."


def test_the_whole_image_note_line_by_line():
    note = image_note(probability=0.1, operating_point=FULL, tds=4.2, tds_band="suspicious",
                      change="area +12% (comparable captures)")
    assert note.split("\n") == [
        "Melanoma score (not a probability) 0.10: below the model's operating threshold (0.23).",
        stage_note.MODEL_SCOPE,
        "At this threshold the model found 92% of melanomas (sensitivity, 95% CI 86%–96%) with 64% specificity "
        "(95% CI 61%–67%), measured on 1110 dermoscopic research test images (118 melanomas), not on this "
        "clinic's patients.",
        "A score below the threshold does not exclude melanoma: 9 of the 118 test melanomas scored below it.",
        "Dermoscopy score (TDS) 4.20: suspicious.",
        "Since the previous capture: area +12% (comparable captures).",
        f"{stage_note.EXCISE} {stage_note.MONITOR_ALTERNATIVE}",  # a suspicious TDS, whatever the score
        stage_note.NEEDS_HISTOPATHOLOGY,
        stage_note.DECISION_SUPPORT,
    ]


def test_a_score_at_the_threshold_counts_as_at_or_above_it():
    assert stage_note.threshold_band(0.23, 0.23) == "at or above the model's operating threshold"
    assert stage_note.threshold_band(0.2299, 0.23) == "below the model's operating threshold"
    note = image_note(probability=0.23, operating_point=FULL)
    assert "0.23: at or above the model's operating threshold (0.23)." in note
    assert "does not exclude melanoma" not in note
    assert stage_note.suggested_next_step(0.23, 0.23, None, growing=False) == (
        f"{stage_note.EXCISE} {stage_note.MONITOR_ALTERNATIVE}")


@pytest.mark.parametrize("score,tds_band,growing,advice", [
    (0.1, None, False, stage_note.ROUTINE),
    (0.1, "benign", False, stage_note.ROUTINE),
    (0.1, "suspicious", False, f"{stage_note.EXCISE} {stage_note.MONITOR_ALTERNATIVE}"),
    (0.1, "highly suspicious", False, stage_note.EXCISE),
    (0.9, "highly suspicious", False, stage_note.EXCISE),
    (0.1, None, True, stage_note.EXCISE_GROWTH),
])
def test_the_next_step_in_the_note_follows_score_tds_and_growth(score, tds_band, growing, advice):
    assert stage_note.suggested_next_step(score, 0.23, tds_band, growing) == advice
    tds = 5.0 if tds_band else None
    note = image_note(probability=score, operating_point=FULL, tds=tds, tds_band=tds_band, growing=growing)
    assert advice in note.split("\n")


def test_without_growth_stated_the_note_does_not_claim_growth():
    assert stage_note.ROUTINE in image_note(probability=0.1, operating_point=FULL).split("\n")


@pytest.mark.parametrize("tds,band", [(4.2, None), (None, "suspicious")])
def test_a_tds_line_needs_both_the_score_and_its_band(tds, band):
    assert "Dermoscopy score" not in image_note(probability=0.1, operating_point=FULL, tds=tds, tds_band=band)


def test_no_change_line_without_a_change():
    assert "Since the previous capture" not in image_note(probability=0.1, operating_point=FULL, change="")


@pytest.mark.parametrize("figures,sentence", [
    (ModelFigures(threshold=0.23, sensitivity=0.9),
     "The model's test figures at this threshold are not recorded; any figures come from dermoscopic research "
     "test images, not on this clinic's patients."),
    (ModelFigures(threshold=0.23, specificity=0.6),
     "The model's test figures at this threshold are not recorded; any figures come from dermoscopic research "
     "test images, not on this clinic's patients."),
    (ModelFigures(threshold=0.23, sensitivity=0.9, specificity=0.6, n_images=500),
     "At this threshold the model found 90% of melanomas (sensitivity) with 60% specificity, measured on held-out "
     "dermoscopic research test images, not on this clinic's patients."),
    (ModelFigures(threshold=0.23, sensitivity=0.9, specificity=0.6, n_melanomas=80,
                  sensitivity_ci95=(0.8, 0.95)),
     "At this threshold the model found 90% of melanomas (sensitivity, 95% CI 80%–95%) with 60% specificity, "
     "measured on held-out dermoscopic research test images, not on this clinic's patients."),
])
def test_the_performance_sentence_says_only_what_the_manifest_gives(figures, sentence):
    assert stage_note.performance_sentence(figures) == sentence


def test_older_manifests_image_and_melanoma_counts_are_read():
    point = OperatingPoint(threshold=0.3, sensitivity=0.9, specificity=0.7, extra={"images": 400, "positives": 60})
    figures = ModelFigures.from_point(point)
    assert (figures.n_images, figures.n_melanomas) == (400, 60)
    # The current names win over the older ones when a manifest carries both.
    both = OperatingPoint(threshold=0.3, extra={"n_images": 500, "images": 400, "n_melanomas": 80, "positives": 60})
    assert (ModelFigures.from_point(both).n_images, ModelFigures.from_point(both).n_melanomas) == (500, 80)


@pytest.mark.parametrize("modality,melanocytic,structures,reason", [
    ("clinical", True, ["dots"], "No TDS: the ABCD rule applies to dermoscopic images only."),
    ("dermoscopic", None, ["dots"], "No TDS: the lesion has not been marked melanocytic (the ABCD rule is the second "
                                    "step of the two-step algorithm)."),
    ("dermoscopic", False, ["dots"], "No TDS: the lesion has not been marked melanocytic (the ABCD rule is the "
                                     "second step of the two-step algorithm)."),
    ("dermoscopic", True, [], "No TDS yet: tick the dermoscopic structures seen (D)."),
    ("dermoscopic", True, ["dots"], "No TDS: the capture has no finished analysis."),
])
def test_why_a_capture_has_no_tds(modality, melanocytic, structures, reason):
    assert stage_note.tds_unavailable_reason(modality=modality, melanocytic=melanocytic,
                                             structures=structures) == reason
