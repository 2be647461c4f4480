"""Bearer-token authentication for the REST API (tokens in clinic.models.ApiToken, hashed)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from clinic.models import ApiToken
from clinic.tokens import active_token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer lt_…``. The request acts as the token's user, confined to the
    token's clinic: the scoped selectors (clinic.selectors.clinic_ids_for) see that one clinic,
    even when the user belongs to several."""

    keyword = "Bearer"

    def authenticate(self, request: Request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Bearer <token>'.")
        try:
            plaintext = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = active_token(plaintext)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        user = token.user
        user._clinic_ids = [token.clinic_id]  # the cache clinic_ids_for reads: this clinic only
        return user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An API token created in the admin (API tokens), sent as 'Bearer lt_…'."}


def token_of(request: Request) -> ApiToken:
    return request.auth
