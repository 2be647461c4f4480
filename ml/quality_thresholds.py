"""The image-quality check's thresholds (ml/quality.py explains and measures them), apart so that
the web pages and the webcam preview can read them without loading numpy or scipy."""

from __future__ import annotations

WORKING_SIDE = 256

# Variance of the Laplacian (grey levels², at WORKING_SIDE). Validation split: 1st percentile of
# real captures 4.7; 95th percentile of the same images blurred (Gaussian, sigma 1% of the long side) < 2.
MIN_LAPLACIAN_VARIANCE = 2.5
# Share of pixels clipped. Validation split: 99th percentile of real captures 2.4% highlights,
# 1.9% shadows (dermoscope vignettes included).
MAX_CLIPPED_HIGHLIGHTS = 0.10
MAX_CRUSHED_SHADOWS = 0.30
# A whole image too dark: even its bright parts (95th percentile of grey) stay below this.
MIN_BRIGHT_GREY = 50.0
# Share of the lesion outline lying on the image border (a lesion cut in half: 0.42), and the
# lesion's share of the frame. Validation split ground-truth masks: 99th percentile 0.40 (many
# archive lesions fill the frame), 0.9% over the limit.
MAX_OUTLINE_ON_BORDER = 0.40
MIN_LESION_AREA_FRACTION = 0.005
