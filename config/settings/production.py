"""Production: everything that must not be a default is required, and HTTPS is enforced."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

if not os.environ.get("SECRET_KEY"):
    raise ImproperlyConfigured("SECRET_KEY must be set in production")

from config.settings.base import *  # noqa: E402,F403
from config.settings.base import env  # noqa: E402

DEBUG = False
PRODUCTION = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# X-Forwarded-Proto says "this came in over HTTPS" only if a proxy we run wrote it: trusted only
# when a proxy is declared (TRUSTED_PROXY_COUNT, see base.py); otherwise any client could claim it.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXY_COUNT > 0 else None  # noqa: F405
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
# https://docs.djangoproject.com/en/5.2/ref/middleware/#http-strict-transport-security
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
# The container health probe and load balancers call /healthz on plain http from inside the
# deployment; everything else is redirected to https.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
