"""Parts of pages kept in this process's memory while the clinic's records they show are unchanged.

The stamp of an entry starts with the clinic's data generation (clinic.selectors.data_generation),
which database triggers advance on every committed write to the clinic's records, so an entry is
never served after a change; nothing needs invalidating, and a deploy starts cold. The worklist,
the case page's body, the patient page's lesions and the patient search's pages are kept this way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.core.cache import caches

PAGE_PART_TTL_S = 24 * 3600

T = TypeVar("T")


def cached_under(key: str, stamp: tuple[object, ...], build: Callable[[], T], *, cache: str = "page_parts") -> T:
    """`build()`, kept in this process's `cache` (an alias of settings.CACHES) under `key` while
    `stamp` (the clinic's data generation first, then whatever else the part shows that is not in
    the clinic's records) is unchanged. One entry per key, replaced on each change. Nothing is kept
    where the stamp starts with None: no generation (SQLite, or missing triggers: see
    clinic.selectors.data_generation)."""
    parts = caches[cache]
    if stamp[0] is not None:
        cached = parts.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    value = build()
    if stamp[0] is not None:
        parts.set(key, (stamp, value), PAGE_PART_TTL_S)
    return value
