"""API token secrets: how they look, how they are hashed, how a presented token is checked.

A token reads ``lt_<prefix>_<secret>``. The prefix is random and not secret: it finds the row.
The secret has 256 bits of randomness, so an unsalted SHA-256 of the whole token is enough
(the same reasoning as GitHub's and django-rest-knox's token digests: no password to guess).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.utils import timezone

from clinic.models import ApiToken, Membership

TOKEN_SCHEME = "lt"
PREFIX_BYTES = 6  # 12 hex characters
SECRET_BYTES = 32
# last_used_at is written at most this often, so a busy device does not write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def generate() -> tuple[str, str]:
    """A fresh (prefix, plaintext token)."""
    prefix = secrets.token_hex(PREFIX_BYTES)
    return prefix, f"{TOKEN_SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def parse_prefix(plaintext: str) -> str | None:
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_SCHEME or len(parts[1]) != 2 * PREFIX_BYTES:
        return None
    return parts[1]


def active_token(plaintext: str) -> ApiToken | None:
    """The live token this plaintext belongs to, or None: unknown, wrong secret, revoked, its
    user deactivated, or its user no longer a member of the token's clinic."""
    prefix = parse_prefix(plaintext)
    if prefix is None:
        return None
    token = ApiToken.objects.select_related("user", "clinic").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.key_hash, hash_token(plaintext)):
        return None
    if token.revoked_at is not None or not token.user.is_active:
        return None
    if not Membership.objects.filter(user_id=token.user_id, clinic_id=token.clinic_id).exists():
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
