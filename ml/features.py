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
    # Large enough that the lesion fits around its centroid at any rotation.
    size = 2 * int(np.ceil(np.hypot(*mask.shape))) + 4
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


def abrupt_border_segments(image: np.ndarray, mask: np.ndarray, band: int | None = None) -> int:
    """How many of 8 border segments (45° each around the centroid) end abruptly.

    Stolz's B score counts segments where the pigment pattern cuts off sharply at the
    periphery rather than fading. For each segment the intensity profile across the border
    is taken from the signed distance to the border; the cut-off is abrupt when more than
    half of the lesion-to-skin intensity change happens within 1.5 px of the border.
    """
    mask = mask > 0
    if mask.sum() < 20:
        return 0
    gray = image.astype(np.float32).mean(axis=-1) if image.ndim == 3 else image.astype(np.float32)
    band = band or max(4, int(round(np.sqrt(mask.sum()) / 8)))
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    signed = np.where(mask, -inside + 0.5, outside - 0.5)
    ys, xs = np.indices(mask.shape)
    cy, cx = np.argwhere(mask).mean(axis=0)
    sector = ((np.degrees(np.arctan2(ys - cy, xs - cx)) + 360) % 360 // 45).astype(int)
    abrupt = 0
    for s in range(8):
        in_sector = sector == s

        def mean_at(lo: float, hi: float, where: np.ndarray = in_sector) -> float | None:
            sel = where & (signed >= lo) & (signed < hi)
            return float(gray[sel].mean()) if sel.any() else None

        deep, near_in = mean_at(-band, -band + 2), mean_at(-1.5, 0)
        near_out, far = mean_at(0, 1.5), mean_at(band - 2, band)
        if None in (deep, near_in, near_out, far):
            continue
        total = abs(far - deep)
        if total < 10:  # no visible contrast in this segment: no cut-off to speak of
            continue
        if abs(near_out - near_in) / total > 0.5:
            abrupt += 1
    return abrupt


def border(image: np.ndarray, mask: np.ndarray) -> Border:
    return Border(compactness=compactness(mask), abrupt_segments=abrupt_border_segments(image, mask))


def colours(image: np.ndarray, mask: np.ndarray) -> Colours:
    """Which of the six dermoscopic colours cover at least 5% of the lesion (nearest reference colour)."""
    pixels = image[mask > 0].reshape(-1, 3).astype(np.float32)
    names = list(DERMOSCOPIC_COLOURS)
    if len(pixels) == 0:
        return Colours([], 0, {n: 0.0 for n in names})
    refs = np.array([DERMOSCOPIC_COLOURS[n] for n in names], np.float32)
    nearest = np.argmin(((pixels[:, None, :] - refs[None]) ** 2).sum(-1), axis=1)
    fractions = {n: float(np.mean(nearest == i)) for i, n in enumerate(names)}
    present = [n for n in names if fractions[n] >= COLOUR_PRESENCE_FRACTION]
    return Colours(present, max(1, len(present)), fractions)


def feret_diameter_px(mask: np.ndarray) -> float:
    """The largest distance between two points of the lesion (maximum Feret diameter)."""
    points = np.argwhere(mask > 0).astype(np.float64)
    if len(points) < 3:
        return float(len(points))
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


def total_dermoscopy_score(a: int, b: int, c: int, d: int) -> float:
    """Stolz's TDS = 1.3·A + 0.1·B + 0.5·C + 0.5·D."""
    return round(1.3 * a + 0.1 * b + 0.5 * c + 0.5 * d, 2)


def tds_band(tds: float) -> str:
    """Published bands: < 4.75 benign, 4.75–5.45 suspicious, > 5.45 highly suspicious."""
    if tds < 4.75:
        return "benign"
    if tds <= 5.45:
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
