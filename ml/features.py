"""ABCD features measured from an image and its lesion mask.

Each measurement is a plain function of numpy arrays. The dermoscopic ABCD rule and its
Total Dermoscopy Score are from Stolz W. et al., "ABCD rule of dermatoscopy", Eur J Dermatol
1994;4:521-527 (see also Nachbar F. et al., J Am Acad Dermatol 1994;30:551-559).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import ConvexHull

from ml.contracts import FeatureRecord

# Reference RGB values for the six dermoscopic colours, from Kasmi R. & Mokrani K.,
# "Classification of malignant melanoma and benign skin lesions: implementation of automatic
# ABCD rule", IET Image Processing 2016;10(6):448-455.
DERMOSCOPIC_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "red": (204, 51, 51),
    "light_brown": (153, 102, 51),
    "dark_brown": (51, 0, 0),
    "blue_grey": (0, 102, 153),
    "black": (0, 0, 0),
}

# An axis counts as asymmetric when the mirrored halves disagree on more than this share of
# the lesion's area; chosen so digitisation noise on a drawn circle or ellipse stays below it.
AXIS_ASYMMETRY_THRESHOLD = 0.08
# A colour counts as present when at least this share of lesion pixels is nearest to it.
COLOUR_PRESENCE_FRACTION = 0.05



@dataclass(frozen=True)
class Asymmetry:
    axes_asymmetric: int  # 0, 1 or 2: the A of the ABCD rule
    index_major: float  # mismatched area / lesion area when mirrored across the major axis
    index_minor: float
    orientation_degrees: float


@dataclass(frozen=True)
class Border:
    compactness: float  # perimeter² / (4π·area); 1 for a circle
    abrupt_segments: int  # 0..8: the B of the ABCD rule


@dataclass(frozen=True)
class Colours:
    present: list[str]
    count: int  # 1..6: the C of the ABCD rule
    fractions: dict[str, float]


@dataclass(frozen=True)
class Diameter:
    value: float
    unit: str  # "mm" when pixel spacing is known, else "px"
    area: float
    area_unit: str


def _principal_axes(mask: np.ndarray) -> tuple[np.ndarray, float]:
    ys, xs = np.nonzero(mask)
    centroid = np.array([ys.mean(), xs.mean()])
    cov = np.cov(np.stack([ys - centroid[0], xs - centroid[1]]))
    eigvals, eigvecs = np.linalg.eigh(cov)
    major = eigvecs[:, int(np.argmax(eigvals))]
    return centroid, float(np.degrees(np.arctan2(major[0], major[1])))


def asymmetry(mask: np.ndarray) -> Asymmetry:
    """Shape asymmetry about the lesion's two principal axes.

    The mask is rotated so its major axis is horizontal and centred on its centroid, then
    mirrored across each principal axis; the index is the non-overlapping area over the
    lesion area (Stoecker W.V. et al., Comput Med Imaging Graph 1992;16:191-197).
    """
    mask = mask > 0
    if mask.sum() < 10:
        return Asymmetry(0, 0.0, 0.0, 0.0)
    ys, xs = np.nonzero(mask)
    mask = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    centroid, angle = _principal_axes(mask)
    # Large enough that the lesion fits around its centroid at any rotation: twice the farthest
    # lesion pixel's distance from the centroid (not the bounding box's diagonal, which made the
    # canvas, and the cost of the shift and rotation, several times larger for the same result).
    ys, xs = np.nonzero(mask)
    reach = float(np.sqrt(((ys - centroid[0]) ** 2 + (xs - centroid[1]) ** 2).max()))
    size = 2 * int(np.ceil(reach)) + 8
    canvas = np.zeros((size, size), np.float32)
    oy, ox = size // 2 - int(round(centroid[0])), size // 2 - int(round(centroid[1]))
    canvas[oy:oy + mask.shape[0], ox:ox + mask.shape[1]] = mask
    # Sub-pixel centring so the mirror axes pass exactly through the centroid.
    canvas = ndimage.shift(canvas, (round(centroid[0]) - centroid[0], round(centroid[1]) - centroid[1]), order=1)
    aligned = ndimage.rotate(canvas, angle, reshape=False, order=1) > 0.5
    area = aligned.sum()
    index_major = float(np.logical_xor(aligned, aligned[::-1, :]).sum() / (2 * area))
    index_minor = float(np.logical_xor(aligned, aligned[:, ::-1]).sum() / (2 * area))
    axes = int(index_major > AXIS_ASYMMETRY_THRESHOLD) + int(index_minor > AXIS_ASYMMETRY_THRESHOLD)
    return Asymmetry(axes, index_major, index_minor, angle)


def perimeter(mask: np.ndarray) -> float:
    """Perimeter by counting boundary edges with diagonal correction (Freeman chain approximation)."""
    mask = np.pad(mask > 0, 1)
    boundary = mask & ~ndimage.binary_erosion(mask)
    ys, xs = np.nonzero(boundary)
    if len(ys) == 0:
        return 0.0
    # Each boundary pixel contributes by its 4- and diagonal neighbours on the boundary.
    straight = sum(np.sum(boundary[ys + dy, xs + dx]) for dy, dx in ((0, 1), (1, 0)))
    diagonal = sum(np.sum(boundary[ys + dy, xs + dx]) for dy, dx in ((1, 1), (1, -1)))
    # Pixels linked diagonally and straight at once are counted once (Vossepoel & Smeulders).
    return float(straight * 0.948 + diagonal * 1.343) if straight + diagonal else float(len(ys))


def compactness(mask: np.ndarray) -> float:
    """Compactness index P²/(4πA): 1 for a circle, larger for irregular borders."""
    area = float((mask > 0).sum())
    if area == 0:
        return 0.0
    return perimeter(mask) ** 2 / (4 * np.pi * area)


def border_profiles(image: np.ndarray, mask: np.ndarray, band: int) -> np.ndarray:
    """Mean intensity of each of 8 border segments (45° each around the centroid, rows) at four
    places across the border (columns): deep inside (-band..-band+2 px of signed distance), just
    inside (-1.5..0), just outside (0..1.5) and far outside (band-2..band); NaN where a segment has
    no pixel at a place."""
    mask = mask > 0
    if band < 4:
        raise ValueError(f"band must be at least 4 px (its four profile places overlap below that), not {band}")
    gray = image.astype(np.float32).mean(axis=-1) if image.ndim == 3 else image.astype(np.float32)
    lesion_ys, lesion_xs = np.nonzero(mask)
    cy, cx = lesion_ys.mean(), lesion_xs.mean()
    # Only pixels within `band` of the border enter a profile, and every distance under band + 0.5
    # is decided within band + 1 px of the lesion's box: the distance transforms run on that crop.
    top, left = max(0, lesion_ys.min() - band - 1), max(0, lesion_xs.min() - band - 1)
    box = (slice(top, lesion_ys.max() + band + 2), slice(left, lesion_xs.max() + band + 2))
    mask, gray = mask[box], gray[box]
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    signed = np.where(mask, -inside + 0.5, outside - 0.5)
    near = (signed >= -band) & (signed < band)
    ys, xs = np.nonzero(near)
    near_signed, near_gray = signed[near], gray[near].astype(np.float64)
    sector = ((np.degrees(np.arctan2(ys + top - cy, xs + left - cx)) + 360) % 360 // 45).astype(int)
    place = np.full(len(near_signed), -1)  # the places are disjoint, as band >= 4
    for index, (lo, hi) in enumerate(((-band, -band + 2), (-1.5, 0), (0, 1.5), (band - 2, band))):
        place[(near_signed >= lo) & (near_signed < hi)] = index
    read = place >= 0
    cell = sector[read] * 4 + place[read]
    counts = np.bincount(cell, minlength=32).reshape(8, 4)
    sums = np.bincount(cell, weights=near_gray[read], minlength=32).reshape(8, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def abrupt_border_segments(image: np.ndarray, mask: np.ndarray, band: int | None = None) -> int:
    """How many of 8 border segments (45° each around the centroid) end abruptly.

    Stolz's B score counts segments where the pigment pattern cuts off sharply at the
    periphery rather than fading. For each segment the intensity profile across the border
    is taken from the signed distance to the border (border_profiles); the cut-off is abrupt when
    more than half of the lesion-to-skin intensity change happens within 1.5 px of the border.
    """
    mask = mask > 0
    if mask.sum() < 20:
        return 0
    band = band or max(4, int(round(np.sqrt(mask.sum()) / 8)))
    abrupt = 0
    for deep, near_in, near_out, far in border_profiles(image, mask, band):
        if np.isnan([deep, near_in, near_out, far]).any():
            continue
        total = abs(far - deep)
        if total < 10:  # no visible contrast in this segment: no cut-off to speak of
            continue
        if abs(near_out - near_in) / total > 0.5:
            abrupt += 1
    return abrupt


def border(image: np.ndarray, mask: np.ndarray) -> Border:
    return Border(compactness=compactness(mask), abrupt_segments=abrupt_border_segments(image, mask))


# Stolz's rule for white: it is scored only where the area is lighter than the adjacent skin
# (Stolz W. et al., Eur J Dermatol 1994;4:521-527), which also keeps pale skin and bright
# reflections that are no lighter than the surrounding skin from counting as white. The skin is
# the ring of this many pixels around the outline.
SKIN_RING_PX = 6


def surrounding_skin_brightness(image: np.ndarray, mask: np.ndarray, ring_px: int = SKIN_RING_PX) -> float | None:
    """Median brightness (mean of R, G, B) of the skin in a ring just outside the lesion."""
    if ring_px < 1:
        raise ValueError(f"the skin ring must be at least 1 px wide, not {ring_px}")
    inside = mask > 0
    ys, xs = np.nonzero(inside)
    if len(ys) == 0:
        return None
    # The ring (city-block distance 1..ring_px, as the iterated dilation gives) lies within ring_px of
    # the lesion's box: dilate that crop only.
    box = (slice(max(0, ys.min() - ring_px), ys.max() + ring_px + 1),
           slice(max(0, xs.min() - ring_px), xs.max() + ring_px + 1))
    inside = inside[box]
    ring = ndimage.binary_dilation(inside, iterations=ring_px) & ~inside
    if not ring.any():
        return None
    return float(np.median(image[box][ring].reshape(-1, 3).astype(np.float32).mean(axis=1)))


_REFERENCE_RGB = np.array(list(DERMOSCOPIC_COLOURS.values()), np.int32)
_WHITE = list(DERMOSCOPIC_COLOURS).index("white")


def nearest_dermoscopic_colour(pixels: np.ndarray, may_be_white: np.ndarray) -> np.ndarray:
    """Index (in DERMOSCOPIC_COLOURS' order) of each RGB pixel's nearest reference colour by
    Euclidean distance, the first on a tie; white only where `may_be_white`.

    |p - r|² = |p|² - 2 p·r + |r|², and |p|² is the same for every reference: the nearest one needs
    only |r|² - 2 p·r, in exact integers."""
    scores = (_REFERENCE_RGB**2).sum(axis=1) - 2 * (pixels.astype(np.int32) @ _REFERENCE_RGB.T)
    scores[~may_be_white, _WHITE] = np.iinfo(np.int32).max
    return scores.argmin(axis=1)


def colours(image: np.ndarray, mask: np.ndarray) -> Colours:
    """Which of the six dermoscopic colours cover at least 5% of the lesion (nearest reference colour).
    A pixel nearest to white counts as white only when it is lighter than the surrounding skin;
    otherwise it counts as its nearest other colour."""
    pixels = image[mask > 0].reshape(-1, 3)
    names = list(DERMOSCOPIC_COLOURS)
    if len(pixels) == 0:
        return Colours([], 0, {n: 0.0 for n in names})
    skin = surrounding_skin_brightness(image, mask)
    lighter = (pixels.astype(np.float32).mean(axis=1) > skin if skin is not None
               else np.zeros(len(pixels), bool))
    counts = np.bincount(nearest_dermoscopic_colour(pixels, lighter), minlength=len(names))
    fractions = {n: float(counts[i] / len(pixels)) for i, n in enumerate(names)}
    present = [n for n in names if fractions[n] >= COLOUR_PRESENCE_FRACTION]
    return Colours(present, max(1, len(present)), fractions)


def feret_diameter_px(mask: np.ndarray) -> float:
    """The largest distance between two points of the lesion (maximum Feret diameter)."""
    mask = mask > 0
    if mask.sum() < 3:
        return float(mask.sum())
    # The farthest pair lies on the convex hull, whose vertices are border pixels: the hull of the
    # border alone is the same and far cheaper than the hull of every lesion pixel.
    points = np.argwhere(mask & ~ndimage.binary_erosion(mask)).astype(np.float64)
    try:
        hull = points[ConvexHull(points).vertices]
    except Exception:  # collinear points: the hull is degenerate, use all points
        hull = points
    diffs = hull[:, None, :] - hull[None, :, :]
    return float(np.sqrt((diffs**2).sum(-1)).max()) + 1.0


def diameter(mask: np.ndarray, mm_per_pixel: float | None = None) -> Diameter:
    px, area_px = feret_diameter_px(mask), float((mask > 0).sum())
    if mm_per_pixel:
        return Diameter(px * mm_per_pixel, "mm", area_px * mm_per_pixel**2, "mm²")
    return Diameter(px, "px", area_px, "px²")


# Stolz 1994 / Nachbar 1994: TDS = 1.3·A + 0.1·B + 0.5·C + 0.5·D.
TDS_WEIGHTS = {"A": 1.3, "B": 0.1, "C": 0.5, "D": 0.5}
# Published bands: < 4.75 benign; 4.75–5.45 suspicious; > 5.45 highly suspicious (Nachbar 1994).
TDS_BENIGN_BELOW = 4.75
TDS_SUSPICIOUS_UP_TO = 5.45


def total_dermoscopy_score(a: int, b: int, c: int, d: int) -> float:
    """Stolz's TDS = 1.3·A + 0.1·B + 0.5·C + 0.5·D."""
    w = TDS_WEIGHTS
    return round(w["A"] * a + w["B"] * b + w["C"] * c + w["D"] * d, 2)


def tds_band(tds: float) -> str:
    """Published bands: < 4.75 benign, 4.75–5.45 suspicious, > 5.45 highly suspicious."""
    if tds < TDS_BENIGN_BELOW:
        return "benign"
    if tds <= TDS_SUSPICIOUS_UP_TO:
        return "suspicious"
    return "highly suspicious"


# Shape and colour measures are scale-free, so they are computed on the lesion's bounding box
# scaled to at most this many pixels a side; sizes are measured at full resolution.
WORKING_SIDE = 256


def lesion_working_copy(image: np.ndarray, mask: np.ndarray, max_side: int = WORKING_SIDE
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The lesion's bounding box with a margin for the border profile, downscaled if large."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return image, mask
    margin = int(0.25 * max(np.ptp(ys), np.ptp(xs))) + 4
    top, bottom = max(0, ys.min() - margin), min(mask.shape[0], ys.max() + margin + 1)
    left, right = max(0, xs.min() - margin), min(mask.shape[1], xs.max() + margin + 1)
    image, mask = image[top:bottom, left:right], mask[top:bottom, left:right]
    scale = max_side / max(mask.shape)
    if scale >= 1:
        return image, mask
    size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
    small_image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    small_mask = np.asarray(Image.fromarray((mask > 0).astype(np.uint8) * 255).resize(size, Image.BILINEAR)) > 127
    return small_image, small_mask.astype(np.uint8)


def measure(image: np.ndarray, mask: np.ndarray, mm_per_pixel: float | None = None) -> FeatureRecord:
    """All automatic ABCD features as a JSON-ready feature record."""
    work_image, work_mask = lesion_working_copy(image, mask)
    return {
        "asymmetry": asdict(asymmetry(work_mask)),
        "border": asdict(border(work_image, work_mask)),
        "colours": asdict(colours(work_image, work_mask)),
        "diameter": asdict(diameter(mask, mm_per_pixel)),
    }
