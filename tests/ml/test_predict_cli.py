"""`python -m ml predict` on synthetic images, including a broken one among good ones."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from ml.cli import main
from tests.factories import lesion_image


def test_predict_writes_masks_overlays_and_csv_and_reports_broken_files(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "ISIC_0000001.jpg").write_bytes(lesion_image((200, 150)))
    (inputs / "ISIC_0000002.png").write_bytes(lesion_image((120, 160), fmt="PNG"))
    (inputs / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    code = main(["predict", "--out", str(out), "--batch-size", "2", str(inputs)])
    assert code == 1  # the broken file is reported, the others are predicted
    rows = {r["image_id"]: float(r["melanoma"]) for r in csv.DictReader((out / "predictions.csv").open())}
    assert set(rows) == {"ISIC_0000001", "ISIC_0000002"}
    assert all(0.0 <= p <= 1.0 for p in rows.values())
    mask = np.asarray(Image.open(out / "ISIC_0000002_segmentation.png"))
    assert mask.shape == (160, 120) and set(np.unique(mask)) <= {0, 255}
    overlay = Image.open(out / "ISIC_0000001_overlay.png")
    assert overlay.size == (200, 150)


def test_flip_averaging_is_symmetric(tmp_path):
    """With TTA on (every model, every ensemble member), a mirrored image gets the same probability
    and a mirrored mask."""
    import json
    import shutil

    from ml.inference import DEFAULT_MODELS_DIR, Analyzer
    from ml.preprocessing import load_rgb

    models = tmp_path / "models"
    shutil.copytree(DEFAULT_MODELS_DIR, models)
    for path in [*models.glob("classifier*.json"), models / "segmenter.json"]:
        meta = json.loads(path.read_text())
        meta["tta"] = True
        path.write_text(json.dumps(meta))
    (tmp_path / "a.jpg").write_bytes(lesion_image((192, 144), radius=40))
    image = load_rgb(tmp_path / "a.jpg").copy()
    image[:, :60] //= 2  # break the picture's own symmetry
    analyzer = Analyzer(models)
    assert analyzer.tta and analyzer.seg_tta
    one, mirrored = analyzer.analyze_batch([image, np.ascontiguousarray(image[:, ::-1])], features=False)
    assert abs(one.probability - mirrored.probability) < 1e-4
    assert (one.mask == mirrored.mask[:, ::-1]).mean() > 0.995
