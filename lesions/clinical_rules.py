"""Every clinical rule the software applies, generated from the constants the code itself uses,
so the rules page a dermatologist reviews cannot drift from what runs (issue #17 item 7)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from lesions import notes, stage_note, staging
from lesions.forms import DERMOSCOPIC_STRUCTURES
from lesions.models import Histopathology
from ml.contracts import ModelManifest

AJCC = ("Gershenwald J.E. et al., Melanoma staging: evidence-based changes in the AJCC eighth edition cancer "
        "staging manual. CA Cancer J Clin 2017;67:472-492")
STOLZ = "Stolz W. et al., ABCD rule of dermatoscopy. Eur J Dermatol 1994;4:521-527"
NACHBAR = ("Nachbar F. et al., The ABCD rule of dermatoscopy: high prospective value in the diagnosis of "
           "doubtful melanocytic skin lesions. J Am Acad Dermatol 1994;30:551-559")
MONITORING = ("Menzies S.W. et al., Arch Dermatol 2001;137:1583-1589; Kittler H. et al., Arch Dermatol "
              "2006;142:1113-1119; Argenziano G. et al., Br J Dermatol 2008;159:331-336")


@dataclass(frozen=True)
class Rule:
    statement: str
    source: str


@dataclass(frozen=True)
class Section:
    title: str
    rules: list[Rule]
    table: list[list[str]] = field(default_factory=list)  # first row is the header


def _mm(value) -> str:
    return f"{value} mm"


def staging_section() -> Section:
    t = [
        Rule(f"Breslow thickness is recorded to the nearest {staging.BRESLOW_RECORDING_STEP} mm, halves rounded up "
             "(0.75–0.84 mm is recorded as 0.8 mm), before the T category is assigned.", f"{AJCC}, Table 1"),
        Rule(f"T1a: under {_mm(staging.T1A_BELOW_MM)} without ulceration. T1b: under {_mm(staging.T1A_BELOW_MM)} "
             f"with ulceration, or {staging.T1A_BELOW_MM}–{_mm(staging.T1_UP_TO_MM)}. "
             f"T2: >{staging.T1_UP_TO_MM}–{_mm(staging.T2_UP_TO_MM)}. T3: >{staging.T2_UP_TO_MM}–"
             f"{_mm(staging.T3_UP_TO_MM)}. T4: over {_mm(staging.T3_UP_TO_MM)}. a/b: without/with ulceration.",
             f"{AJCC}, Table 1"),
        Rule("TX: thickness cannot be assessed (e.g. curettage). T0: no evidence of a primary tumour "
             "(unknown primary). Tis: melanoma in situ.", f"{AJCC}, Table 1"),
        Rule(f"{', '.join(staging.NODES_FOUND_BY_SENTINEL_BIOPSY)} are clinically occult nodes detected by "
             "sentinel node biopsy; they are refused unless a positive sentinel node biopsy is recorded.",
             f"{AJCC}, Table 1"),
        Rule("M1a–M1d carry the serum LDH suffix when LDH is recorded: "
             + "; ".join(f"{Histopathology.Ldh(k).label.split(' – ')[0].lower()} {v}"
                         for k, v in staging.LDH_SUFFIX.items()) + ".", f"{AJCC}, Table 1"),
        Rule("N and M start as 'not assessed'; a stage group is computed only when T, N and M were all assessed, "
             "otherwise the note names what is missing. Any M1 is stage IV whatever T and N; TX without distant "
             "metastasis has no stage group.", f"{AJCC}, Table 3"),
    ]
    table = [["T \\ N", "N0", *staging.N_CATEGORIES[1:]]]
    for t_cat in ["TX", "Tis", *staging.STAGE_III_GROUPS]:  # STAGE_III_GROUPS runs T0, T1a … T4b
        row = [t_cat, staging.STAGE_NODE_NEGATIVE_GROUPS.get(t_cat, "—")]
        for n in staging.N_CATEGORIES[1:]:
            row.append(next((g for g, ns in staging.STAGE_III_GROUPS.get(t_cat, {}).items() if n in ns), "—"))
        table.append(row)
    groups = [Rule(f"Stage {group}: {text}", f"{AJCC}, Table 3") for group, text in
              stage_note.STAGE_DESCRIPTIONS.items()]
    return Section("AJCC 8th edition staging (from histopathology); table rows with M0, any M1 is IV", t + groups, table)


def dermoscopy_section() -> Section:
    from ml import features  # noqa: PLC0415 -- numpy: the web process imports this module at start, not numpy

    w = features.TDS_WEIGHTS
    return Section("Dermoscopy: ABCD rule and Total Dermoscopy Score", [
        Rule("The TDS is computed only for dermoscopic captures of lesions the clinician marked melanocytic "
             "(second step of the two-step algorithm).", STOLZ),
        Rule(f"TDS = {w['A']}·A + {w['B']}·B + {w['C']}·C + {w['D']}·D; under {features.TDS_BENIGN_BELOW} benign, "
             f"{features.TDS_BENIGN_BELOW}–{features.TDS_SUSPICIOUS_UP_TO} suspicious, over "
             f"{features.TDS_SUSPICIOUS_UP_TO} highly suspicious.", f"{STOLZ}; {NACHBAR}"),
        Rule(stage_note.TDS_PROVENANCE, STOLZ),
        Rule(f"A: an axis is asymmetric when the mirrored outline halves differ by more than "
             f"{features.AXIS_ASYMMETRY_THRESHOLD:.0%} of the lesion area (0–2 axes).", STOLZ),
        Rule("B: of 8 border segments, those where the pigment cuts off abruptly (0–8).", STOLZ),
        Rule(f"C: of the colours {', '.join(c.replace('_', ' ') for c in features.DERMOSCOPIC_COLOURS)}, those "
             f"covering at least {features.COLOUR_PRESENCE_FRACTION:.0%} of the lesion (1–6). White counts only "
             f"where the lesion is lighter than the surrounding skin ({features.SKIN_RING_PX}-pixel ring around "
             "the outline).", STOLZ),
        Rule("D (entered by the clinician), one point per structure present under Stolz's counting rules: "
             + "; ".join(label for _, label in DERMOSCOPIC_STRUCTURES) + ".", f"{STOLZ}; {NACHBAR}"),
    ])


def change_section() -> Section:
    manifest = notes.current_manifest()
    uncertainty = notes.segmenter_area_uncertainty(manifest)
    measured = (f"for the current segmenter ±{uncertainty:.0%}" if uncertainty is not None
                else "not recorded for the current segmenter, so no growth flag is raised")
    return Section("Change between captures and next steps", [
        Rule("Sizes are compared only when both captures have a millimetre calibration and the same modality; "
             "otherwise the page says why they are not comparable.", MONITORING),
        Rule(f"Area-change uncertainty = √2 × (1 − mean Jaccard of the segmenter on its test images): "
             f"{measured}. The growth flag fires only when the area grows by more than this uncertainty and by "
             f"more than the clinic's setting ({settings.LESION_GROWTH_FLAG_FRACTION:.0%}).", MONITORING),
        Rule(stage_note.EXCISE_GROWTH, MONITORING),
        Rule(f"At or above the threshold, or TDS suspicious: {stage_note.EXCISE} {stage_note.MONITOR_ALTERNATIVE}",
             MONITORING),
        Rule(f"TDS highly suspicious: {stage_note.EXCISE}", f"{NACHBAR}; {MONITORING}"),
        Rule(f"Below the threshold: {stage_note.below_threshold_sentence(_point(manifest))} {stage_note.ROUTINE}",
             MONITORING),
    ])


def _point(manifest: ModelManifest | None) -> stage_note.ModelFigures:
    if manifest is None:
        return stage_note.ModelFigures(threshold=float("nan"))
    return stage_note.ModelFigures.from_point(notes.point_with_calibration(manifest))


def model_section() -> Section:
    manifest = notes.current_manifest()
    point = _point(manifest)
    calibrated = bool(manifest) and point.calibrated
    return Section("The image model", [
        Rule(f"The output is called “{stage_note.score_name(True)}” only when the model manifest states it is "
             f"calibrated, otherwise “{stage_note.score_name(False)}”. The current model's output is a "
             f"{stage_note.score_name(calibrated)}.", "Model manifest (ml/models/classifier.json)"),
        Rule(stage_note.MODEL_SCOPE, "Model manifest (ml/models/classifier.json)"),
        Rule((f"Operating threshold {point.threshold:.2f}. " if manifest else "") + stage_note.performance_sentence(point),
             "Model manifest (ml/models/classifier.json), test split"),
        Rule(stage_note.NEEDS_HISTOPATHOLOGY, AJCC),
    ])


def all_sections() -> list[Section]:
    return [staging_section(), dermoscopy_section(), change_section(), model_section()]

