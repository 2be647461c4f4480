"""AJCC 8th-edition cutaneous melanoma staging from histopathology (pure Python).

Source: Gershenwald J.E. et al., "Melanoma staging: evidence-based changes in the American
Joint Committee on Cancer eighth edition cancer staging manual", CA Cancer J Clin
2017;67:472-492, Tables 1 (T, N, M definitions) and 3 (pathological prognostic stage groups).
A stage comes from the pathology report, never from an image.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

N_CATEGORIES = ("N0", "N1a", "N1b", "N1c", "N2a", "N2b", "N2c", "N3a", "N3b", "N3c")
M_CATEGORIES = ("M0", "M1a", "M1b", "M1c", "M1d")

# Table 3, stage III rows: for each T group, the N categories that give each stage.
_STAGE_III = {
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

_STAGE_NODE_NEGATIVE = {
    "Tis": "0", "T1a": "IA", "T1b": "IA", "T2a": "IB", "T2b": "IIA", "T3a": "IIA",
    "T3b": "IIB", "T4a": "IIB", "T4b": "IIC",
}


class StagingError(ValueError):
    """The recorded findings do not define a stage group (for example, no thickness)."""


@dataclass(frozen=True)
class Stage:
    t: str
    n: str
    m: str
    group: str


def t_category(breslow_mm: float | Decimal | None, ulcerated: bool, *, in_situ: bool = False) -> str:
    """T category from Breslow thickness (mm) and ulceration.

    T1a: < 0.8 mm without ulceration; T1b: < 0.8 mm with ulceration, or 0.8–1.0 mm;
    T2: > 1.0–2.0 mm; T3: > 2.0–4.0 mm; T4: > 4.0 mm; a/b = without/with ulceration.
    """
    if in_situ:
        return "Tis"
    if breslow_mm is None:
        raise StagingError("Breslow thickness is needed for the T category")
    thickness = Decimal(str(breslow_mm))
    if thickness < 0:
        raise StagingError("Breslow thickness cannot be negative")
    if thickness < Decimal("0.8"):
        return "T1b" if ulcerated else "T1a"
    if thickness <= Decimal("1.0"):
        return "T1b"
    suffix = "b" if ulcerated else "a"
    if thickness <= Decimal("2.0"):
        return f"T2{suffix}"
    if thickness <= Decimal("4.0"):
        return f"T3{suffix}"
    return f"T4{suffix}"


def stage_group(t: str, n: str, m: str) -> str:
    """Pathological stage group (0, IA … IV) from T, N and M categories (Table 3)."""
    if n not in N_CATEGORIES:
        raise StagingError(f"unknown N category {n!r}")
    if m not in M_CATEGORIES:
        raise StagingError(f"unknown M category {m!r}")
    if m != "M0":
        return "IV"
    if n == "N0":
        if t not in _STAGE_NODE_NEGATIVE:
            raise StagingError(f"{t} N0 M0 has no stage group")
        return _STAGE_NODE_NEGATIVE[t]
    for group, ns in _STAGE_III.get(t, {}).items():
        if n in ns:
            return group
    raise StagingError(f"{t} {n} M0 has no stage group")


def stage(*, breslow_mm: float | Decimal | None, ulcerated: bool, n: str, m: str, in_situ: bool = False) -> Stage:
    t = t_category(breslow_mm, ulcerated, in_situ=in_situ)
    return Stage(t=t, n=n, m=m, group=stage_group(t, n, m))
