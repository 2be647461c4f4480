"""What passes between ml/ and the Django app, typed: the shipped models' manifest and the
feature record of one analysis.

Standard library only: the web process reads the manifest (to stamp each new analysis with
the model version) without importing numpy, scipy or TensorFlow.

The shipped operating threshold has one source of truth: ``ml/models/classifier.json``, key
``threshold``. ``python -m ml calibrate`` writes it (chosen on the validation split for
``ml.defaults.SENSITIVITY_TARGET``), training's export writes the first one, and every reader
(the workers' Analyzer, the web app's notes, the model card) goes through ``read_model_manifest``.
The test figures quoted beside it (``test_metrics``) count only when they were measured at that
same threshold: see ``ModelManifest.operating_point``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NotRequired, TypedDict

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent / "models"
MODEL_KINDS = ("segmenter", "classifier")


class ModelsMissing(RuntimeError):
    """No shipped model metadata where it was looked for."""


@dataclass(frozen=True)
class OperatingPoint:
    """The classifier's threshold and the figures measured at it, as a note quotes them.

    Stored on each analysis, so a note is always rebuilt from the figures of the model that
    ran. Unknown keys (new manifest fields such as confidence intervals or image counts) are
    kept in ``extra`` rather than refused.
    """

    threshold: float
    sensitivity: float | None = None
    specificity: float | None = None
    model_version: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {**self.extra, "threshold": self.threshold, "sensitivity": self.sensitivity,
                "specificity": self.specificity, "model_version": self.model_version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OperatingPoint:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(threshold=float(data["threshold"]), sensitivity=_optional_float(data.get("sensitivity")),
                   specificity=_optional_float(data.get("specificity")),
                   model_version=str(data.get("model_version") or ""),
                   extra={k: v for k, v in data.items() if k not in known})


@dataclass(frozen=True)
class ModelInfo:
    """One shipped model's JSON file. The fields every reader needs are typed; the whole file
    stays in ``raw`` (training config, calibration, fields added later)."""

    kind: str
    name: str
    version: str
    file: str
    input_shape: tuple[int, ...]
    threshold: float
    test_metrics: Mapping[str, Any]
    raw: Mapping[str, Any] = field(compare=False)

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    @classmethod
    def from_dict(cls, kind: str, data: Mapping[str, Any]) -> ModelInfo:
        try:
            return cls(kind=kind, name=str(data["name"]), version=str(data["version"]), file=str(data["file"]),
                       input_shape=tuple(int(x) for x in data["input_shape"]),
                       threshold=float(data.get("threshold", 0.5)), test_metrics=dict(data.get("test_metrics") or {}),
                       raw=dict(data))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelsMissing(f"the {kind} metadata is incomplete or malformed ({exc!r})") from exc


@dataclass(frozen=True)
class ModelManifest:
    segmenter: ModelInfo
    classifier: ModelInfo

    @property
    def version(self) -> str:
        """What each Analysis row records: both models' versions."""
        return f"seg-{self.segmenter.version}+cls-{self.classifier.version}"

    def operating_point(self) -> OperatingPoint:
        """The shipped threshold with the test sensitivity and specificity measured *at that
        threshold*. After a recalibration the old test figures belong to another threshold:
        they are left out (None) until ``python -m ml evaluate --record`` measures again."""
        cls = self.classifier
        metrics = cls.test_metrics
        measured_at = _optional_float(metrics.get("threshold"))
        same_threshold = measured_at is not None and math.isclose(measured_at, cls.threshold, abs_tol=1e-9)
        extra = {k: v for k, v in metrics.items() if k not in {"threshold", "sensitivity", "specificity",
                                                                 "confusion", "data"}} if same_threshold else {}
        return OperatingPoint(threshold=cls.threshold,
                              sensitivity=_optional_float(metrics.get("sensitivity")) if same_threshold else None,
                              specificity=_optional_float(metrics.get("specificity")) if same_threshold else None,
                              model_version=cls.version, extra=extra)

    def as_dict(self) -> dict[str, Any]:
        """The untyped view ``ml.inference.read_manifest`` has always returned."""
        return {"segmenter": dict(self.segmenter.raw), "classifier": dict(self.classifier.raw),
                "version": self.version}


def read_model_manifest(models_dir: str | Path = DEFAULT_MODELS_DIR) -> ModelManifest:
    """The one reader of the shipped models' JSON files (no TensorFlow, no numpy)."""
    models_dir = Path(models_dir)
    infos = {}
    for kind in MODEL_KINDS:
        path = models_dir / f"{kind}.json"
        if not path.is_file():
            raise ModelsMissing(f"no {kind} model metadata at {path}")
        infos[kind] = ModelInfo.from_dict(kind, json.loads(path.read_text()))
    return ModelManifest(**infos)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


# The feature record: what ml.features.measure returns for one image and what each Analysis
# stores in its `features` JSON (with the TDS and change the web app adds).

class AsymmetryRecord(TypedDict):
    axes_asymmetric: int  # 0, 1 or 2: the A of the ABCD rule
    index_major: float
    index_minor: float
    orientation_degrees: float


class BorderRecord(TypedDict):
    compactness: float
    abrupt_segments: int  # 0..8: the B of the ABCD rule


class ColoursRecord(TypedDict):
    present: list[str]
    count: int  # 1..6: the C of the ABCD rule
    fractions: dict[str, float]


class DiameterRecord(TypedDict):
    value: float
    unit: str  # "mm" when the pixel spacing is known, else "px"
    area: float
    area_unit: str


class TdsRecord(TypedDict):
    a: int
    b: int
    c: int
    d: int
    score: float
    band: str


class FeatureRecord(TypedDict):
    asymmetry: AsymmetryRecord
    border: BorderRecord
    colours: ColoursRecord
    diameter: DiameterRecord
    tds: NotRequired[TdsRecord | None]  # added by the web app once the clinician records structures
    change: NotRequired[dict[str, Any] | None]  # lesions.evolution.Change.as_dict() against the previous capture

