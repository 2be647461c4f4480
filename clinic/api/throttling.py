"""Rate limits per API token (DRF throttling over Django's cache)."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from clinic.models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    """Requests per token; the rate is REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["api_token"]."""

    scope = "api_token"

    def get_rate(self) -> str:
        # Read when used (DRF binds its class attribute at import), so a changed setting applies.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_cache_key(self, request, view) -> str | None:
        token = request.auth
        if not isinstance(token, ApiToken):
            return None  # unauthenticated requests never reach a view's work
        return self.cache_format % {"scope": self.scope, "ident": token.prefix}


class TokenUploadThrottle(TokenRateThrottle):
    """Uploads per token: each starts an analysis on the GPU queue."""

    scope = "api_upload"
