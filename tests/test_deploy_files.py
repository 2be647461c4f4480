"""No Docker engine runs here: check the Dockerfile and compose file as far as can be done offline."""

from __future__ import annotations

import re
from pathlib import Path

import yaml  # pinned in requirements-dev.txt: a missing package fails the run, never skips it

REPO = Path(__file__).resolve().parents[1]


def test_dockerfile_targets_are_multi_stage_and_non_root():
    text = (REPO / "Dockerfile").read_text()
    targets = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, flags=re.M)
    assert {"build", "runtime", "web", "worker", "worker-gpu"} <= set(targets)
    assert "tensorflow/tensorflow:2.21.0-gpu" in text
    assert "tensorflow==2.21.0" in (REPO / "requirements.txt").read_text()
    for stage in text.split("\nFROM ")[1:]:
        name = stage.split()[2] if " AS " in stage.split("\n")[0] else ""
        if name in {"runtime", "worker-gpu"}:
            assert "\nUSER lesiontrack" in stage, f"stage {name} must drop root"
    assert "gunicorn" in text


def test_compose_runs_postgres_redis_web_and_worker():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker"} <= set(services)
    assert services["web"]["build"]["target"] == "web"
    assert services["worker"]["build"]["target"] == "worker"
    assert services["web"]["environment"]["CELERY_BROKER_URL"].startswith("redis://")
    assert services["web"]["environment"]["DATABASE_URL"].startswith("postgres://")


def test_requirements_are_pinned():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO / name).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r")):
                assert "==" in line, f"{name}: {line} is not pinned"
