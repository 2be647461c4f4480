"""All wording of the stage note, in one place so it can be reviewed for clinical caution.

Before histopathology the note says what the image suggests and what is commonly done
next; it always says that a stage needs histopathology. After histopathology it gives the
AJCC 8th-edition stage and the T/N/M that led to it.
"""

from __future__ import annotations

from lesions.staging import Stage
from ml.contracts import OperatingPoint

DECISION_SUPPORT = ("Decision support only, not a diagnosis: the result must be interpreted by a clinician "
                    "together with history, examination and dermoscopy.")
NEEDS_HISTOPATHOLOGY = ("A melanoma stage cannot be determined from an image: staging (AJCC 8th edition) needs "
                        "histopathology — Breslow thickness, ulceration — and nodal and metastatic assessment.")

# Plain-language descriptions of the stage groups (after Gershenwald et al. 2017).
STAGE_DESCRIPTIONS = {
    "0": "Melanoma in situ: confined to the epidermis, not invasive.",
    "IA": "Early invasive melanoma: thin (up to 1.0 mm) and no spread to lymph nodes.",
    "IB": "Localised melanoma, 1.0–2.0 mm thick without ulceration; no nodal spread.",
    "IIA": "Localised melanoma, thicker (1.0–2.0 mm ulcerated or 2.0–4.0 mm non-ulcerated); no nodal spread.",
    "IIB": "Localised melanoma, 2.0–4.0 mm ulcerated or over 4.0 mm non-ulcerated; no nodal spread.",
    "IIC": "Localised melanoma over 4.0 mm thick and ulcerated; no nodal spread.",
    "IIIA": "Regional spread: microscopic disease in 1–3 lymph nodes with a thin primary tumour.",
    "IIIB": "Regional spread to lymph nodes or in-transit/satellite sites, intermediate extent.",
    "IIIC": "Regional spread, more extensive nodal or in-transit disease, or a thicker primary with nodes.",
    "IIID": "Regional spread: thick ulcerated primary with four or more nodes or matted nodes.",
    "IV": "Distant metastasis (skin, soft tissue, distant nodes, lung, other organs or brain).",
}


# The threshold and the figures measured at it: the type ml/ and the web app share.
ModelOperatingPoint = OperatingPoint


def probability_band(probability: float, threshold: float) -> str:
    if probability < threshold:
        return "below the model's operating threshold"
    if probability < max(0.75, threshold):
        return "above the model's operating threshold"
    return "well above the model's operating threshold"


def suggested_next_step(probability: float, threshold: float, tds_band: str | None, growing: bool) -> str:
    if probability >= max(0.75, threshold) or tds_band == "highly suspicious":
        return "Consider excisional biopsy for histopathology."
    if probability >= threshold or tds_band == "suspicious" or growing:
        return "Consider biopsy, or short-term digital monitoring (about 3 months) if clinically reassuring."
    return "If clinically reassuring, routine review; re-image if the lesion changes."


def image_note(*, probability: float, operating_point: ModelOperatingPoint, tds: float | None = None,
               tds_band: str | None = None, change: str | None = None, growing: bool = False) -> str:
    """What the image suggests, before histopathology."""
    op = operating_point
    performance = ""
    if op.sensitivity is not None and op.specificity is not None:
        performance = (f" At this threshold the model found {op.sensitivity:.0%} of melanomas "
                       f"(sensitivity) with {op.specificity:.0%} specificity on held-out test images.")
    lines = [
        f"Model melanoma probability {probability:.2f}, {probability_band(probability, op.threshold)} "
        f"({op.threshold:.2f}).{performance}",
    ]
    if tds is not None and tds_band:
        lines.append(f"Dermoscopy score (TDS) {tds:.2f}: {tds_band}.")
    if change:
        lines.append(f"Since the previous capture: {change}.")
    lines.append(suggested_next_step(probability, op.threshold, tds_band, growing))
    lines.append(NEEDS_HISTOPATHOLOGY)
    lines.append(DECISION_SUPPORT)
    return "\n".join(lines)


def pathology_note(stage: Stage) -> str:
    return "\n".join([
        f"AJCC 8th edition pathological stage {stage.group} ({stage.t} {stage.n} {stage.m}).",
        STAGE_DESCRIPTIONS[stage.group],
        "Stage from the recorded histopathology; confirm against the pathology report and MDT review.",
    ])


def pathology_incomplete_note(reason: str) -> str:
    return f"Histopathology recorded but the stage cannot be computed yet: {reason}. {NEEDS_HISTOPATHOLOGY}"
