"""Change of a lesion between consecutive captures, from their stored ABCD features."""

from __future__ import annotations

from dataclasses import asdict, dataclass


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

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        parts = []
        if self.comparable_units:
            parts.append(f"area {self.area_change_fraction:+.0%}")
            parts.append(f"diameter {self.diameter_before:.1f}→{self.diameter_after:.1f} {self.diameter_unit}")
        else:
            parts.append("size not comparable (pixel spacing missing on one capture)")
        if self.colour_count_after != self.colour_count_before:
            parts.append(f"colours {self.colour_count_before}→{self.colour_count_after}")
        if self.asymmetry_axes_after != self.asymmetry_axes_before:
            parts.append(f"asymmetric axes {self.asymmetry_axes_before}→{self.asymmetry_axes_after}")
        if self.growing:
            parts.append("GROWTH FLAG")
        return ", ".join(parts)


def compare(before: dict, after: dict, growth_flag_fraction: float) -> Change | None:
    """Compare two analyses' feature dicts; None when either has no features.

    Sizes compare only in the same unit: millimetres when both captures have pixel
    spacing, pixels otherwise (which assumes the same device and distance).
    """
    if not before or not after:
        return None
    d0, d1 = before["diameter"], after["diameter"]
    comparable = d0["unit"] == d1["unit"]
    area_change = (d1["area"] - d0["area"]) / d0["area"] if comparable and d0["area"] else 0.0
    return Change(
        area_before=d0["area"], area_after=d1["area"], area_unit=d1["area_unit"],
        area_change_fraction=area_change,
        diameter_before=d0["value"], diameter_after=d1["value"], diameter_unit=d1["unit"],
        colour_count_before=before["colours"]["count"], colour_count_after=after["colours"]["count"],
        asymmetry_axes_before=before["asymmetry"]["axes_asymmetric"],
        asymmetry_axes_after=after["asymmetry"]["axes_asymmetric"],
        growing=comparable and area_change > growth_flag_fraction,
        comparable_units=comparable,
    )
