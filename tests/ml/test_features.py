"""ABCD features on drawn shapes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ml import features

SIZE = 200
yy, xx = np.mgrid[:SIZE, :SIZE]


def disc(radius=60, cy=100, cx=100):
    return ((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2).astype(np.uint8)


def star(points=5, inner=50, depth=30):
    angle = np.arctan2(yy - 100, xx - 100)
    return (np.hypot(yy - 100, xx - 100) < inner + depth * np.cos(points * angle)).astype(np.uint8)


def paint(mask, colour=(95, 55, 35), background=(222, 184, 160)):
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    img[:] = background
    img[mask > 0] = colour
    return img


def test_circle_is_symmetric_and_compact():
    result = features.asymmetry(disc())
    assert result.axes_asymmetric == 0
    assert result.index_major < 0.02 and result.index_minor < 0.02
    assert features.compactness(disc()) == pytest.approx(1.0, abs=0.08)


def test_ellipse_is_symmetric_about_both_axes():
    ellipse = (((yy - 100) / 40) ** 2 + ((xx - 100) / 80) ** 2 < 1).astype(np.uint8)
    assert features.asymmetry(ellipse).axes_asymmetric == 0


def test_star_is_irregular():
    assert features.compactness(star()) > 2.0
    assert features.asymmetry(star()).axes_asymmetric >= 1


def test_one_lobe_on_the_axis_is_asymmetric_on_one_axis_only():
    # A disc with one lobe is mirror-symmetric about the line through both centres.
    lobed = np.maximum(disc(50), disc(28, cy=60, cx=135))
    assert features.asymmetry(lobed).axes_asymmetric == 1


def test_irregular_lobes_are_asymmetric_on_both_axes():
    lobed = np.maximum.reduce([disc(40), disc(30, cy=100, cx=150), disc(15, cy=45, cx=100), disc(18, cy=140, cx=70)])
    assert features.asymmetry(lobed).axes_asymmetric == 2


def test_sharp_border_is_abrupt_and_blurred_border_is_not():
    img = paint(disc())
    assert features.abrupt_border_segments(img, disc()) == 8
    blurred = ndimage.gaussian_filter(img.astype(float), (8, 8, 0)).astype(np.uint8)
    assert features.abrupt_border_segments(blurred, disc()) == 0


def test_two_colour_disc_counts_two_colours():
    mask = disc()
    img = paint(mask)
    img[(mask > 0) & (xx < 100)] = (150, 100, 52)  # light brown
    img[(mask > 0) & (xx >= 100)] = (52, 4, 4)  # dark brown
    result = features.colours(img, mask)
    assert result.count == 2
    assert set(result.present) == {"light_brown", "dark_brown"}


def test_six_colours_are_recognised():
    mask = disc(80)
    img = paint(mask)
    sectors = (np.degrees(np.arctan2(yy - 100, xx - 100)) + 180) // 60
    for i, rgb in enumerate(features.DERMOSCOPIC_COLOURS.values()):
        img[(mask > 0) & (sectors == i)] = rgb
    assert features.colours(img, mask).count == 6


def test_diameter_in_mm_with_spacing_and_px_without():
    mask = disc(50)
    assert features.diameter(mask).unit == "px"
    assert features.diameter(mask).value == pytest.approx(100, abs=2)
    in_mm = features.diameter(mask, mm_per_pixel=0.1)
    assert in_mm.unit == "mm" and in_mm.value == pytest.approx(10, abs=0.2)
    assert in_mm.area == pytest.approx(np.pi * 25, rel=0.03)


@pytest.mark.parametrize("a,b,c,d,tds,band", [
    (0, 0, 1, 1, 1.0, "benign"), (1, 4, 3, 2, 4.2, "benign"), (2, 4, 3, 2, 5.5, "highly suspicious"),
    (2, 0, 2, 2, 4.6, "benign"), (2, 2, 2, 2, 4.8, "suspicious"), (2, 8, 6, 5, 8.9, "highly suspicious"),
])
def test_total_dermoscopy_score_and_bands(a, b, c, d, tds, band):
    score = features.total_dermoscopy_score(a, b, c, d)
    assert score == pytest.approx(tds)
    assert features.tds_band(score) == band


def test_band_edges():
    assert features.tds_band(4.74) == "benign"
    assert features.tds_band(4.75) == "suspicious"
    assert features.tds_band(5.45) == "suspicious"
    assert features.tds_band(5.46) == "highly suspicious"


def test_lesion_touching_the_image_edge_off_centre():
    mask = np.zeros((120, 300), np.uint8)
    mask[10:110, 200:300] = 1  # a square against the right edge, far from the centre
    result = features.asymmetry(mask)
    assert result.axes_asymmetric == 0
    big = np.zeros((720, 1280), np.uint8)
    big[:, 500:] = 1
    assert features.asymmetry(big).axes_asymmetric == 0


def test_measure_on_a_large_image_matches_the_same_lesion_small():
    big = np.zeros((1200, 1600), np.uint8)
    yy2, xx2 = np.mgrid[:1200, :1600]
    big[((yy2 - 600) / 300) ** 2 + ((xx2 - 800) / 420) ** 2 < 1] = 1
    image = np.where(big[..., None] > 0, np.uint8(60), np.uint8(220)).repeat(3, axis=-1)
    result = features.measure(image, big, mm_per_pixel=0.01)
    assert result["asymmetry"]["axes_asymmetric"] == 0
    assert result["border"]["compactness"] == pytest.approx(1.03, abs=0.1)
    assert result["diameter"]["value"] == pytest.approx(8.4, abs=0.05)  # measured at full resolution


def test_white_counts_only_where_the_lesion_is_lighter_than_the_surrounding_skin():
    # Stolz 1994: white is scored only where the area is lighter than the adjacent skin.
    mask = disc()
    pale_skin = (244, 238, 234)
    img = paint(mask, background=pale_skin)
    img[(mask > 0) & (xx < 100)] = (220, 218, 216)  # nearest to white, but darker than this skin
    result = features.colours(img, mask)
    assert "white" not in result.present
    img[(mask > 0) & (xx < 100)] = (252, 252, 252)  # lighter than the skin: white
    assert "white" in features.colours(img, mask).present


def test_white_is_counted_against_darker_skin():
    mask = disc()
    img = paint(mask)  # skin (222, 184, 160)
    img[(mask > 0) & (xx < 100)] = (230, 228, 226)
    assert "white" in features.colours(img, mask).present


def test_nearest_colour_is_the_smallest_euclidean_distance_first_on_a_tie():
    """Against the definition: squared RGB distance to each reference, in order, white only where allowed."""
    rng = np.random.default_rng(7)
    refs = np.array(list(features.DERMOSCOPIC_COLOURS.values()), np.float64)
    # Every third level of each channel (the references and exact ties among them included) and random pixels.
    grid = np.stack(np.meshgrid(*[np.arange(0, 256, 3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pixels = np.concatenate([grid, rng.integers(0, 256, (5000, 3)), refs]).astype(np.uint8)
    may_be_white = rng.random(len(pixels)) < 0.5
    distances = ((pixels[:, None, :].astype(np.float64) - refs[None]) ** 2).sum(-1)
    distances[~may_be_white, list(features.DERMOSCOPIC_COLOURS).index("white")] = np.inf
    expected = np.argmin(distances, axis=1)  # numpy's argmin returns the first of equal minima
    assert ((distances == distances.min(axis=1, keepdims=True)).sum(axis=1) > 1).sum() > 100  # ties are tested
    assert (features.nearest_dermoscopic_colour(pixels, may_be_white) == expected).all()
    assert (features.nearest_dermoscopic_colour(np.array([[250, 250, 250]], np.uint8), np.array([False]))
            != list(features.DERMOSCOPIC_COLOURS).index("white")).all()


def _border_profiles_by_definition(image, mask, band):
    """The border profiles as documented, over the whole image: the signed distance to the border;
    per 45° sector around the centroid, the mean intensity deep inside, just inside, just outside
    and far outside."""
    mask = mask > 0
    gray = image.astype(np.float32).mean(axis=-1)
    signed = np.where(mask, -ndimage.distance_transform_edt(mask) + 0.5, ndimage.distance_transform_edt(~mask) - 0.5)
    ys, xs = np.nonzero(mask)
    rows, cols = np.indices(mask.shape)
    sector = ((np.degrees(np.arctan2(rows - ys.mean(), cols - xs.mean())) + 360) % 360 // 45).astype(int)
    profiles = np.full((8, 4), np.nan)
    for s in range(8):
        for p, (lo, hi) in enumerate(((-band, -band + 2), (-1.5, 0), (0, 1.5), (band - 2, band))):
            place = (sector == s) & (signed >= lo) & (signed < hi)
            if place.any():
                profiles[s, p] = gray[place].astype(np.float64).mean()
    return profiles


def _abrupt_segments_by_definition(image, mask):
    """Stolz's B as documented: abrupt where more than half of a visible (10 levels) change from
    deep inside to far outside happens across the border."""
    band = max(4, int(round(np.sqrt((mask > 0).sum()) / 8)))
    abrupt = 0
    for deep, near_in, near_out, far in _border_profiles_by_definition(image, mask, band):
        if not np.isnan([deep, near_in, near_out, far]).any() and abs(far - deep) >= 10 \
                and abs(near_out - near_in) / abs(far - deep) > 0.5:
            abrupt += 1
    return abrupt


def _skin_brightness_by_definition(image, mask, ring_px=features.SKIN_RING_PX):
    ring = ndimage.binary_dilation(mask > 0, iterations=ring_px) & ~(mask > 0)
    return float(np.median(image[ring].astype(np.float32).mean(axis=1))) if ring.any() else None


def _lesion_at(cy, cx, seed):
    rng = np.random.default_rng(seed)
    lobes = [disc(rng.integers(12, 30), cy=cy + rng.integers(-15, 16), cx=cx + rng.integers(-15, 16)) for _ in range(3)]
    return np.maximum.reduce(lobes)


@pytest.mark.parametrize("cy,cx", [(100, 100), (20, 20), (8, 190), (190, 100), (100, 1), (30, 170)],
                         ids=["centre", "near-corner", "touching-top-right", "touching-bottom", "touching-left",
                              "off-centre"])
def test_border_and_skin_ring_match_their_whole_image_definitions(cy, cx):
    """Measured on crops around the lesion, the border's abrupt segments and the skin ring give what
    the definitions give over the whole image, for lesions in the middle, near and touching edges."""
    counts = []
    for seed in range(4):
        mask = _lesion_at(cy, cx, seed)
        rng = np.random.default_rng(seed)
        img = paint(mask, colour=(80 + 10 * seed, 50, 35)).astype(float) + rng.normal(0, 4, (SIZE, SIZE, 3))
        img = np.clip(img, 0, 255).astype(np.uint8)
        soft = slice(0, max(4, cy + 12 * (seed - 1)))  # the lesion's upper part fades into the skin
        img[soft] = ndimage.gaussian_filter(img[soft].astype(float), (5, 5, 0))
        counts.append(features.abrupt_border_segments(img, mask))
        assert counts[-1] == _abrupt_segments_by_definition(img, mask)
        for band in (4, 9):
            np.testing.assert_allclose(features.border_profiles(img, mask, band),
                                       _border_profiles_by_definition(img, mask, band), rtol=1e-9)
        for ring_px in (1, 2, features.SKIN_RING_PX, 15):
            assert features.surrounding_skin_brightness(img, mask, ring_px) == _skin_brightness_by_definition(
                img, mask, ring_px)
    assert len(set(counts)) > 1 or 0 < counts[0] < 8  # the images test more than one answer


def test_a_skin_ring_under_one_pixel_is_refused():
    with pytest.raises(ValueError, match="at least 1 px"):
        features.surrounding_skin_brightness(paint(disc()), disc(), ring_px=0)


def test_a_border_band_under_four_pixels_is_refused():
    with pytest.raises(ValueError, match="at least 4"):
        features.abrupt_border_segments(paint(disc()), disc(), band=3)
