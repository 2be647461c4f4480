from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Benchmarks and the large-clinic seed: development tooling, installed only by the dev and
    test settings (config.settings.dev, config.settings.test), never in production."""

    name = "bench"
    verbose_name = "Benchmarks (dev only)"
