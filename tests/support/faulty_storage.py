"""Storage backends that fail the way real disks and object stores do, for fault tests."""

from __future__ import annotations

from django.core.files.base import File
from django.core.files.storage import FileSystemStorage


class _HalfThenError(File):
    """Yields the first half of the content, then fails like a full disk (ENOSPC/EFBIG)."""

    def __init__(self, content: File) -> None:
        super().__init__(content.file, content.name)
        self._data = content.read()

    def chunks(self, chunk_size=None):
        yield self._data[: len(self._data) // 2]
        raise OSError(28, "No space left on device")

    @property
    def size(self) -> int:
        return len(self._data)


class FailingMidWriteStorage(FileSystemStorage):
    """Django's own FileSystemStorage._save writing through a file that breaks half-way: the
    truncated file really lands under its final name, as it did with the file-size limit."""

    def _save(self, name, content):
        return super()._save(name, _HalfThenError(content))


class FailingSecondWriteStorage(FileSystemStorage):
    """The first write of each process works, every later one fails half-way (analysis outputs:
    the mask is stored, the overlay write fails)."""

    writes = 0

    def _save(self, name, content):
        type(self).writes += 1
        if type(self).writes > 1:
            return super()._save(name, _HalfThenError(content))
        return super()._save(name, content)
