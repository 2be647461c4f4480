"""Change of a lesion between consecutive captures, from their stored ABCD features.

Sizes are compared only between comparable captures: both calibrated in millimetres and of the
same modality (a dermoscope and a clinical close-up do not outline the same lesion area). The
growth flag fires only when the area change exceeds the measurement uncertainty, taken from the
segmenter's measured Jaccard index on its test images. Documented growth of a melanocytic lesion
between comparable captures is a reason to excise (Kittler H. et al., Arch Dermatol
2006;142:1113-1119; Menzies S.W. et al., Arch Dermatol 2001;137:1583-1589).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

MODALITY_NAMES = {"dermoscopic": "dermoscopic", "clinical": "clinical close-up"}


def area_change_uncertainty(jaccard: float | None) -> float | None:
    """Relative uncertainty of an area change between two captures, from the segmenter's mean
    Jaccard index J: for one outline, |A_pred - A_true| <= |A_pred xor A_true| = (1 - J)·|A_pred u A_true|,
    so the relative area error is at most 1 - J; two independent captures combine in quadrature."""
    if jaccard is None:
        return None
    return math.sqrt(2) * (1.0 - float(jaccard))


@dataclass(frozen=True)
class Change:
    area_before: float
    area_after: float
    area_unit: str
    area_change_fraction: float
    diameter_before: float
    diameter_after: float
    diameter_unit: str
    colour_count_before: int
    colour_count_after: int
    asymmetry_axes_before: int
    asymmetry_axes_after: int
    growing: bool
    comparable_units: bool
    # Defaults keep changes stored before these fields were added readable.
    comparable: bool | None = None
    not_comparable_reason: str = ""
    area_uncertainty_fraction: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def size_comparable(self) -> bool:
        return self.comparable if self.comparable is not None else self.comparable_units

    def summary(self) -> str:
        parts = []
        if self.size_comparable:
            if self.area_uncertainty_fraction is not None:
                parts.append(f"area {self.area_change_fraction:+.0%} "
                             f"(measurement uncertainty ±{self.area_uncertainty_fraction:.0%})")
            else:
                parts.append(f"area {self.area_change_fraction:+.0%} (the measurement uncertainty is not "
                             "recorded, so no growth flag)")
            parts.append(f"diameter {self.diameter_before:.1f}→{self.diameter_after:.1f} {self.diameter_unit}")
        else:
            reason = self.not_comparable_reason or "pixel spacing missing on one capture"
            parts.append(f"not comparable in size: {reason}")
        if self.colour_count_after != self.colour_count_before:
            parts.append(f"colours {self.colour_count_before}→{self.colour_count_after}")
        if self.asymmetry_axes_after != self.asymmetry_axes_before:
            parts.append(f"asymmetric axes {self.asymmetry_axes_before}→{self.asymmetry_axes_after}")
        if self.growing:
            parts.append("GROWTH FLAG: the area grew by more than the measurement uncertainty")
        return ", ".join(parts)


def not_comparable_reason(before: dict, after: dict, before_modality: str, after_modality: str) -> str:
    """Why two captures cannot be compared in size, or "" when they can."""
    calibrated = (before["diameter"]["unit"] == "mm", after["diameter"]["unit"] == "mm")
    if calibrated == (False, False):
        return "neither capture has a millimetre calibration"
    if not calibrated[0]:
        return "the earlier capture has no millimetre calibration"
    if not calibrated[1]:
        return "the later capture has no millimetre calibration"
    if before_modality != after_modality:
        names = (MODALITY_NAMES.get(before_modality, before_modality), MODALITY_NAMES.get(after_modality, after_modality))
        return f"different modalities ({names[0]}, then {names[1]})"
    return ""


def compare(before: dict, after: dict, *, before_modality: str, after_modality: str,
            area_uncertainty: float | None, flag_fraction: float) -> Change | None:
    """Compare two analyses' feature dicts; None when either has no features.

    The growth flag needs comparable captures and an area change above both the measurement
    uncertainty and the clinic's configured flag fraction.
    """
    if not before or not after:
        return None
    d0, d1 = before["diameter"], after["diameter"]
    reason = not_comparable_reason(before, after, before_modality, after_modality)
    comparable = not reason
    area_change = (d1["area"] - d0["area"]) / d0["area"] if comparable and d0["area"] else 0.0
    growing = comparable and area_uncertainty is not None and area_change > max(flag_fraction, area_uncertainty)
    return Change(
        area_before=d0["area"], area_after=d1["area"], area_unit=d1["area_unit"],
        area_change_fraction=area_change,
        diameter_before=d0["value"], diameter_after=d1["value"], diameter_unit=d1["unit"],
        colour_count_before=before["colours"]["count"], colour_count_after=after["colours"]["count"],
        asymmetry_axes_before=before["asymmetry"]["axes_asymmetric"],
        asymmetry_axes_after=after["asymmetry"]["axes_asymmetric"],
        growing=growing, comparable_units=d0["unit"] == d1["unit"], comparable=comparable,
        not_comparable_reason=reason, area_uncertainty_fraction=area_uncertainty if comparable else None,
    )
