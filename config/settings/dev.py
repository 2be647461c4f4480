"""Development settings: base plus the dev-only `bench` app (benchmarks and the large-clinic
seed; it needs requirements-dev.txt). `make bench` runs with these settings."""

from config.settings.base import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # noqa: F405
