"""What every API view shares: token authentication, clinic scoping through the request's
user, rate limits, and no redirect to the login page (LoginRequiredMiddleware is for pages)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import IsAuthenticated

from clinic.api.authentication import ApiTokenAuthentication
from clinic.api.throttling import TokenRateThrottle


class ApiPagination(LimitOffsetPagination):
    """limit/offset paging that refuses what it cannot read (DRF's would quietly use its default)."""

    default_limit = 50
    max_limit = 200

    def _read(self, request, name: str, minimum: int, default: int) -> int:
        raw = request.query_params.getlist(name)
        if not raw:
            return default
        if len(raw) > 1 or not raw[0].isdigit() or int(raw[0]) < minimum:
            raise ValidationError({name: [f"Expected one whole number of at least {minimum}."]})
        return int(raw[0])

    def get_limit(self, request) -> int:
        return min(self._read(request, self.limit_query_param, 1, self.default_limit), self.max_limit)

    def get_offset(self, request) -> int:
        return self._read(request, self.offset_query_param, 0, 0)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1 if parameter["name"] == self.limit_query_param else 0
        return parameters


class TokenApiMixin:
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [TokenRateThrottle]
    pagination_class = ApiPagination

    @classmethod
    def as_view(cls, **initkwargs):
        # The token, not a session, authenticates: answer 401 in JSON rather than redirect.
        return login_not_required(super().as_view(**initkwargs))
