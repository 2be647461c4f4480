"""The one place that decides a request's client address (audit trail and login lockout).

X-Forwarded-For is written by whoever sends the request, so it is trusted only as far as the
deployment declares proxies in front of the app: TRUSTED_PROXY_COUNT (default 0, documented in
README "Configuration"). With n trusted proxies, the nearest one's peer is REMOTE_ADDR and each
trusted proxy appended the address it saw to the header, so the client is the n-th entry from the
right; everything further left was written by the client and is ignored.
An address that does not parse is not stored (None), never the raw text.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def parse_address(value: str | None) -> str | None:
    """The address in canonical form, or None if it is not an IPv4/IPv6 address."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    proxies = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0))
    if proxies <= 0:
        return parse_address(request.META.get("REMOTE_ADDR"))
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if not forwarded:
        # The request reached the app without passing the declared proxy.
        return parse_address(request.META.get("REMOTE_ADDR"))
    # Fewer entries than proxies: the request entered the chain part-way; the leftmost entry
    # was still written by a trusted proxy.
    return parse_address(forwarded[-proxies] if len(forwarded) >= proxies else forwarded[0])
