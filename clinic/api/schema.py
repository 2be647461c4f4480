"""OpenAPI schema generation: every operation documents the error answers it can give."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ERROR = inline_serializer("Error", fields={"detail": serializers.CharField()})
ERRORS = {
    "401": OpenApiResponse(ERROR, description="No token, or an unknown or revoked one."),
    "404": OpenApiResponse(ERROR, description="No such record in the token's clinic."),
    "429": OpenApiResponse(ERROR, description="Rate limit reached; see the Retry-After header."),
}
VALIDATION_ERROR = OpenApiResponse(
    {"type": "object", "additionalProperties": {},
     "description": "Each invalid field's name with a list of messages ('non_field_errors' for the whole "
                    "request), or 'detail' for a request that could not be parsed."},
    description="The request was refused: nothing was written.")


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's schema plus the error responses DRF gives on every route, so that a
    client generated from the schema (and schemathesis) knows them."""

    def _get_response_bodies(self, direction: str = "response"):
        responses = super()._get_response_bodies(direction)
        if not self.view.get_authenticators():
            return responses
        errors = {**ERRORS, "400": VALIDATION_ERROR}  # a query parameter can be refused, too
        for code, response in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses
