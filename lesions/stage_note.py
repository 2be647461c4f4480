"""All wording of the stage note, in one place so it can be reviewed for clinical caution.

Before histopathology the note says what the image suggests, how good the model is and on
what data that was measured, and what is commonly done next; it always says that a stage
needs histopathology. After histopathology it gives the AJCC 8th-edition stage and the T/N/M
that led to it, or names what was not assessed.

Sources:
- AJCC 8th edition: Gershenwald J.E. et al., "Melanoma staging: evidence-based changes in the
  American Joint Committee on Cancer eighth edition cancer staging manual", CA Cancer J Clin
  2017;67:472-492 (Table 1: T, N, M; Table 3: pathological stage groups).
- Short-term digital monitoring (about 3 months) only for flat melanocytic lesions without
  melanoma-specific dermoscopic criteria, any change leading to excision: Menzies S.W. et al.,
  Arch Dermatol 2001;137:1583-1589; Kittler H. et al., Arch Dermatol 2006;142:1113-1119;
  Argenziano G. et al., Br J Dermatol 2008;159:331-336.
"""

from __future__ import annotations

from dataclasses import dataclass

from lesions.staging import Stage
from ml.contracts import OperatingPoint

DECISION_SUPPORT = ("Decision support only, not a diagnosis: the result must be interpreted by a clinician "
                    "together with history, examination and dermoscopy.")
NEEDS_HISTOPATHOLOGY = ("If this lesion proves to be melanoma, its stage needs histopathology (Breslow thickness, "
                        "ulceration) and nodal and metastatic assessment (AJCC 8th edition); it cannot be "
                        "determined from an image.")
MODEL_SCOPE = ("The model scores melanoma against all other lesions; it does not assess basal cell or "
               "squamous cell carcinoma.")
# Where the model's figures come from: say it every time they are shown.
MODEL_TEST_DATA = "dermoscopic research test images"
NOT_THIS_CLINIC = "not on this clinic's patients"

# Short-term digital monitoring interval (Menzies 2001; Argenziano 2008).
SHORT_TERM_MONITORING_MONTHS = 3

# Plain-language descriptions of the stage groups (Gershenwald et al. 2017, Tables 1 and 3).
STAGE_DESCRIPTIONS = {
    "0": "Melanoma in situ: confined to the epidermis, not invasive (Tis).",
    "IA": ("Early invasive melanoma up to 1.0 mm thick (T1a: under 0.8 mm without ulceration; T1b: under 0.8 mm "
           "with ulceration, or 0.8–1.0 mm); no nodal spread."),
    "IB": "Localised melanoma >1.0–2.0 mm thick without ulceration (T2a); no nodal spread.",
    "IIA": ("Localised melanoma >1.0–2.0 mm thick with ulceration (T2b) or >2.0–4.0 mm without ulceration (T3a); "
            "no nodal spread."),
    "IIB": ("Localised melanoma >2.0–4.0 mm thick with ulceration (T3b) or over 4.0 mm without ulceration (T4a); "
            "no nodal spread."),
    "IIC": "Localised melanoma over 4.0 mm thick with ulceration (T4b); no nodal spread.",
    "IIIA": ("Regional spread: a T1a–T2a primary (T1a, T1b or T2a) with 1–3 clinically occult lymph nodes found by "
             "sentinel node biopsy (N1a or N2a)."),
    "IIIB": ("Regional spread: an unknown primary (T0) with one clinically detected node or in-transit, satellite "
             "or microsatellite metastases (N1b, N1c); a T1a–T2a primary with N1b, N1c or N2b; or a T2b–T3a "
             "primary with N1a, N1b, N1c, N2a or N2b."),
    "IIIC": ("Regional spread: an unknown primary (T0) with N2b, N2c, N3b or N3c; a T1a–T3a primary with N2c or "
             "N3a–N3c; a T3b–T4a primary with any nodal or in-transit disease; or a T4b primary with N1a–N2c."),
    "IIID": ("Regional spread: a primary over 4.0 mm thick with ulceration (T4b) with N3 disease — four or more "
             "nodes, matted nodes, or two or more nodes with in-transit, satellite or microsatellite metastases "
             "(N3a, N3b, N3c)."),
    "IV": ("Distant metastasis: skin, soft tissue including muscle, or non-regional nodes (M1a); lung (M1b); "
           "other visceral sites, not the central nervous system (M1c); central nervous system (M1d)."),
}


# The threshold and the figures measured at it: the type ml/ and the web app share.
ModelOperatingPoint = OperatingPoint


@dataclass(frozen=True)
class ModelFigures:
    """The classifier's threshold and its test figures, as far as the model manifest states them.
    Any figure the manifest does not give is None and the note says less; nothing is filled in."""

    threshold: float
    sensitivity: float | None = None
    specificity: float | None = None
    calibrated: bool = False
    sensitivity_ci95: tuple[float, float] | None = None
    specificity_ci95: tuple[float, float] | None = None
    n_images: int | None = None
    n_melanomas: int | None = None
    melanomas_below_threshold: int | None = None

    @classmethod
    def from_point(cls, point: OperatingPoint) -> ModelFigures:
        """From the operating point stored with an analysis; the manifest's extra test fields
        (n_images, n_melanomas, *_ci95, melanomas_below_threshold; older names images, positives)
        and `calibrated` are read when present, never filled in."""
        extra = point.extra or {}
        return cls(threshold=point.threshold, sensitivity=point.sensitivity, specificity=point.specificity,
                   calibrated=extra.get("calibrated") is True,
                   sensitivity_ci95=_pair(extra.get("sensitivity_ci95")),
                   specificity_ci95=_pair(extra.get("specificity_ci95")),
                   n_images=_int(extra.get("n_images", extra.get("images"))),
                   n_melanomas=_int(extra.get("n_melanomas", extra.get("positives"))),
                   melanomas_below_threshold=_int(extra.get("melanomas_below_threshold")))


def _pair(value) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return float(value[0]), float(value[1])
    return None


def _int(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def score_name(calibrated: bool | None) -> str:
    """What the classifier's output is called everywhere (case page, report, compare page, admin,
    CSV exports): a probability only when the model was calibrated, otherwise a score."""
    return "melanoma probability" if calibrated is True else "melanoma score (not a probability)"


def threshold_band(score: float, threshold: float) -> str:
    if score < threshold:
        return "below the model's operating threshold"
    return "at or above the model's operating threshold"


def result_line(score: float, threshold: float, calibrated: bool | None) -> str:
    """The one-line result of one capture's analysis."""
    name = score_name(calibrated)
    return f"{name[:1].upper()}{name[1:]} {score:.2f}: {threshold_band(score, threshold)} ({threshold:.2f})."


def _ci(ci: tuple[float, float] | None) -> str:
    return f", 95% CI {ci[0]:.0%}–{ci[1]:.0%}" if ci is not None else ""


def performance_sentence(op: ModelFigures) -> str:
    """The model's test figures with the data they were measured on."""
    if op.sensitivity is None or op.specificity is None:
        return (f"The model's test figures at this threshold are not recorded; any figures come from "
                f"{MODEL_TEST_DATA}, {NOT_THIS_CLINIC}.")
    if op.n_images is not None and op.n_melanomas is not None:
        data = f"{op.n_images} {MODEL_TEST_DATA} ({op.n_melanomas} melanomas)"
    else:
        data = f"held-out {MODEL_TEST_DATA}"
    return (f"At this threshold the model found {op.sensitivity:.0%} of melanomas (sensitivity{_ci(op.sensitivity_ci95)}) "
            f"with {op.specificity:.0%} specificity{f' ({_ci(op.specificity_ci95)[2:]})' if op.specificity_ci95 else ''}, "
            f"measured on {data}, {NOT_THIS_CLINIC}.")


def below_threshold_sentence(op: ModelFigures) -> str:
    if op.melanomas_below_threshold is not None and op.n_melanomas is not None:
        return (f"A score below the threshold does not exclude melanoma: {op.melanomas_below_threshold} of the "
                f"{op.n_melanomas} test melanomas scored below it.")
    return "A score below the threshold does not exclude melanoma."


EXCISE = "Consider excision for histopathology."
EXCISE_GROWTH = ("Documented growth between comparable captures: in a melanocytic lesion this suggests excision "
                 "for histopathology, not further monitoring.")
MONITOR_ALTERNATIVE = (f"Short-term digital monitoring (about {SHORT_TERM_MONITORING_MONTHS} months) is an "
                       "alternative only for a flat lesion without melanoma-specific dermoscopic criteria; excise "
                       "if any change.")
ROUTINE = ("If the clinical and dermoscopic findings are reassuring, routine review; re-assess if the lesion "
           "changes or the patient reports a change.")


def suggested_next_step(score: float, threshold: float, tds_band: str | None, growing: bool) -> str:
    """Next step per dermoscopic practice: growth of a melanocytic lesion between comparable
    captures means excision (Kittler 2006; Menzies 2001); monitoring only for flat lesions without
    melanoma-specific criteria, with excision on any change (Argenziano 2008)."""
    if growing:
        return EXCISE_GROWTH
    if tds_band == "highly suspicious":
        return EXCISE
    if score >= threshold or tds_band == "suspicious":
        return f"{EXCISE} {MONITOR_ALTERNATIVE}"
    return ROUTINE


def image_note(*, probability: float, operating_point: OperatingPoint | ModelFigures, tds: float | None = None,
               tds_band: str | None = None, change: str | None = None, growing: bool = False) -> str:
    """What the image suggests, before histopathology."""
    op = operating_point if isinstance(operating_point, ModelFigures) else ModelFigures.from_point(operating_point)
    lines = [result_line(probability, op.threshold, op.calibrated), MODEL_SCOPE, performance_sentence(op)]
    if probability < op.threshold:
        lines.append(below_threshold_sentence(op))
    if tds is not None and tds_band:
        lines.append(f"Dermoscopy score (TDS) {tds:.2f}: {tds_band}.")
    if change:
        lines.append(f"Since the previous capture: {change}.")
    lines.append(suggested_next_step(probability, op.threshold, tds_band, growing))
    lines.append(NEEDS_HISTOPATHOLOGY)
    lines.append(DECISION_SUPPORT)
    return "\n".join(lines)


def _primary_text(t: str, breslow_recorded_mm, ulcerated: bool) -> str:
    if t == "TX":
        return "TX: the primary tumour's thickness could not be assessed"
    if t == "T0":
        return "T0: no evidence of a primary tumour"
    if t == "Tis":
        return "Tis: melanoma in situ"
    ulcer = "with ulceration" if ulcerated else "without ulceration"
    return f"{t}: Breslow thickness recorded as {breslow_recorded_mm} mm, {ulcer}"


def pathology_note(stage: Stage, *, ulcerated: bool = False) -> str:
    return "\n".join([
        f"AJCC 8th edition pathological stage {stage.group} ({stage.t} {stage.n} {stage.m_display}).",
        f"{_primary_text(stage.t, stage.breslow_recorded_mm, ulcerated)}.",
        STAGE_DESCRIPTIONS[stage.group],
        "Stage from the recorded histopathology; confirm against the pathology report and MDT review.",
    ])


def pathology_incomplete_note(reason: str, *, t: str | None = None, breslow_recorded_mm=None,
                              ulcerated: bool = False) -> str:
    """Histopathology is saved but no stage group follows: say what is known and what is missing."""
    known = f"{_primary_text(t, breslow_recorded_mm, ulcerated)}. " if t else ""
    return (f"Histopathology recorded. {known}The stage group is not computed: {reason}. "
            "Record the missing findings to stage the melanoma.")


# The TDS (Stolz 1994; Nachbar 1994) as the app computes it: say what was measured and by whom.
TDS_PROVENANCE = ("A, B and C were measured automatically from the outline; D was entered by the clinician. "
                  "The automatic A measures the outline's shape only, not the asymmetry of colours and structures "
                  "that Stolz's A also counts.")


def tds_unavailable_reason(*, modality: str, melanocytic: bool | None, structures: list[str]) -> str:
    """Why a capture has no TDS."""
    if modality != "dermoscopic":
        return "No TDS: the ABCD rule applies to dermoscopic images only."
    if melanocytic is not True:
        return ("No TDS: the lesion has not been marked melanocytic (the ABCD rule is the second step of the "
                "two-step algorithm).")
    if not structures:
        return "No TDS yet: tick the dermoscopic structures seen (D)."
    return "No TDS: the capture has no finished analysis."
