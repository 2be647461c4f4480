"""What every API view shares: token authentication, clinic scoping through the request's
user, rate limits, and no redirect to the login page (LoginRequiredMiddleware is for pages)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import IsAuthenticated

from clinic.api.authentication import ApiTokenAuthentication
from clinic.api.throttling import TokenRateThrottle


class ApiPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200


class TokenApiMixin:
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [TokenRateThrottle]
    pagination_class = ApiPagination

    @classmethod
    def as_view(cls, **initkwargs):
        # The token, not a session, authenticates: answer 401 in JSON rather than redirect.
        return login_not_required(super().as_view(**initkwargs))
