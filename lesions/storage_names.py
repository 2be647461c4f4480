"""Names for stored files: random, so that nobody can guess another patient's file."""

from __future__ import annotations

import uuid


def random_name() -> str:
    return uuid.uuid4().hex
