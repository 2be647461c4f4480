"""AJCC 8th-edition cutaneous melanoma staging from histopathology (pure Python).

Source: Gershenwald J.E. et al., "Melanoma staging: evidence-based changes in the American
Joint Committee on Cancer eighth edition cancer staging manual", CA Cancer J Clin
2017;67:472-492, Tables 1 (T, N, M definitions) and 3 (pathological prognostic stage groups).
A stage comes from the pathology report, never from an image.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

N_CATEGORIES = ("N0", "N1a", "N1b", "N1c", "N2a", "N2b", "N2c", "N3a", "N3b", "N3c")
M_CATEGORIES = ("M0", "M1a", "M1b", "M1c", "M1d")

# Table 3, stage III rows: for each T group, the N categories that give each stage.
STAGE_III_GROUPS = {
    "T0": {"IIIB": ("N1b", "N1c"), "IIIC": ("N2b", "N2c", "N3b", "N3c")},
    "T1a": {"IIIA": ("N1a", "N2a"), "IIIB": ("N1b", "N1c", "N2b"), "IIIC": ("N2c", "N3a", "N3b", "N3c")},
    "T1b": {"IIIA": ("N1a", "N2a"), "IIIB": ("N1b", "N1c", "N2b"), "IIIC": ("N2c", "N3a", "N3b", "N3c")},
    "T2a": {"IIIA": ("N1a", "N2a"), "IIIB": ("N1b", "N1c", "N2b"), "IIIC": ("N2c", "N3a", "N3b", "N3c")},
    "T2b": {"IIIB": ("N1a", "N1b", "N1c", "N2a", "N2b"), "IIIC": ("N2c", "N3a", "N3b", "N3c")},
    "T3a": {"IIIB": ("N1a", "N1b", "N1c", "N2a", "N2b"), "IIIC": ("N2c", "N3a", "N3b", "N3c")},
    "T3b": {"IIIC": N_CATEGORIES[1:]},
    "T4a": {"IIIC": N_CATEGORIES[1:]},
    "T4b": {"IIIC": ("N1a", "N1b", "N1c", "N2a", "N2b", "N2c"), "IIID": ("N3a", "N3b", "N3c")},
}

STAGE_NODE_NEGATIVE_GROUPS = {
    "Tis": "0", "T1a": "IA", "T1b": "IA", "T2a": "IB", "T2b": "IIA", "T3a": "IIA",
    "T3b": "IIB", "T4a": "IIB", "T4b": "IIC",
}


# How the primary tumour was assessed (Table 1, T category): a measured invasive tumour or in situ
# melanoma gives Tis/T1–T4; TX when thickness cannot be assessed (e.g. diagnosis by curettage);
# T0 when there is no evidence of a primary tumour (unknown primary, or a fully regressed one).
PRIMARY_ASSESSED = ""
PRIMARY_NOT_ASSESSABLE = "TX"
PRIMARY_UNKNOWN = "T0"

# Table 1, T category: Breslow thickness is recorded to the nearest 0.1 mm ("0.75-0.84 mm is
# recorded as 0.8 mm"), and the upper bound of each band is inclusive after rounding.
BRESLOW_RECORDING_STEP = Decimal("0.1")
T1A_BELOW_MM = Decimal("0.8")  # T1a: < 0.8 mm without ulceration (with ulceration: T1b)
T1_UP_TO_MM = Decimal("1.0")  # T1b: 0.8–1.0 mm with or without ulceration
T2_UP_TO_MM = Decimal("2.0")  # T2: > 1.0–2.0 mm
T3_UP_TO_MM = Decimal("4.0")  # T3: > 2.0–4.0 mm; T4: > 4.0 mm

# Table 1, N category: "a" subcategories are clinically occult nodes, i.e. detected by sentinel
# node biopsy; they cannot be recorded without one.
NODES_FOUND_BY_SENTINEL_BIOPSY = ("N1a", "N2a", "N3a")

# Table 1, M category: M1a–M1d carry the serum LDH suffix, (0) not elevated, (1) elevated.
LDH_NOT_RECORDED = ""
LDH_NORMAL = "normal"
LDH_ELEVATED = "elevated"
LDH_SUFFIX = {LDH_NORMAL: "(0)", LDH_ELEVATED: "(1)"}


class StagingError(ValueError):
    """The recorded findings do not define a stage group (for example, no thickness)."""


@dataclass(frozen=True)
class Stage:
    t: str
    n: str
    m: str
    group: str
    breslow_recorded_mm: Decimal | None = None
    ldh: str = LDH_NOT_RECORDED

    @property
    def m_display(self) -> str:
        """M with the LDH suffix for distant metastasis, e.g. M1c(1)."""
        return m_with_ldh(self.m, self.ldh)


def m_with_ldh(m: str, ldh: str) -> str:
    return f"{m}{LDH_SUFFIX[ldh]}" if m.startswith("M1") and ldh in LDH_SUFFIX else m


def recorded_breslow_mm(breslow_mm: float | Decimal | str) -> Decimal:
    """Breslow thickness as AJCC records it: to the nearest 0.1 mm, halves rounded up."""
    return Decimal(str(breslow_mm)).quantize(BRESLOW_RECORDING_STEP, rounding=ROUND_HALF_UP)


def t_category(breslow_mm: float | Decimal | None, ulcerated: bool, *, in_situ: bool = False,
               primary: str = PRIMARY_ASSESSED) -> str:
    """T category from Breslow thickness (mm, rounded to 0.1 mm first) and ulceration.

    T1a: < 0.8 mm without ulceration; T1b: < 0.8 mm with ulceration, or 0.8–1.0 mm;
    T2: > 1.0–2.0 mm; T3: > 2.0–4.0 mm; T4: > 4.0 mm; a/b = without/with ulceration.
    """
    if primary == PRIMARY_NOT_ASSESSABLE:
        return "TX"
    if primary == PRIMARY_UNKNOWN:
        return "T0"
    if in_situ:
        return "Tis"
    if breslow_mm is None:
        raise StagingError("Breslow thickness is needed for the T category")
    thickness = recorded_breslow_mm(breslow_mm)
    if thickness < 0:
        raise StagingError("Breslow thickness cannot be negative")
    if thickness < T1A_BELOW_MM:
        return "T1b" if ulcerated else "T1a"
    if thickness <= T1_UP_TO_MM:
        return "T1b"
    suffix = "b" if ulcerated else "a"
    if thickness <= T2_UP_TO_MM:
        return f"T2{suffix}"
    if thickness <= T3_UP_TO_MM:
        return f"T3{suffix}"
    return f"T4{suffix}"


def stage_group(t: str, n: str, m: str) -> str:
    """Pathological stage group (0, IA … IV) from T, N and M categories (Table 3)."""
    if not n:
        raise StagingError("the N category (regional lymph nodes) has not been assessed")
    if not m:
        raise StagingError("the M category (distant metastasis) has not been assessed")
    if n not in N_CATEGORIES:
        raise StagingError(f"unknown N category {n!r}")
    if m not in M_CATEGORIES:
        raise StagingError(f"unknown M category {m!r}")
    if m != "M0":
        return "IV"  # Table 3: any T, any N, M1 is stage IV
    if t == "TX":
        raise StagingError("the primary tumour's thickness could not be assessed (TX): "
                           "without distant metastasis there is no stage group")
    if n == "N0":
        if t not in STAGE_NODE_NEGATIVE_GROUPS:
            raise StagingError(f"{t} N0 M0 has no stage group")
        return STAGE_NODE_NEGATIVE_GROUPS[t]
    for group, ns in STAGE_III_GROUPS.get(t, {}).items():
        if n in ns:
            return group
    raise StagingError(f"{t} {n} M0 has no stage group")


def stage(*, breslow_mm: float | Decimal | None, ulcerated: bool, n: str, m: str, in_situ: bool = False,
          primary: str = PRIMARY_ASSESSED, ldh: str = LDH_NOT_RECORDED) -> Stage:
    t = t_category(breslow_mm, ulcerated, in_situ=in_situ, primary=primary)
    measured = breslow_mm is not None and t not in ("TX", "T0", "Tis")
    recorded = recorded_breslow_mm(breslow_mm) if measured else None
    missing = [what for what, value in (("N category (regional lymph nodes)", n),
                                        ("M category (distant metastasis)", m)) if not value]
    if missing:
        raise StagingError(f"the {' and the '.join(missing)} {'has' if len(missing) == 1 else 'have'} "
                           "not been assessed")
    return Stage(t=t, n=n, m=m, group=stage_group(t, n, m), breslow_recorded_mm=recorded, ldh=ldh)
