"""Deployment files, checked without a Docker engine (the real build and stack run: `make docker-test`,
tests/docker/run_stack.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml  # pinned in requirements-dev.txt: a missing package fails the run, never skips it

from config.healthcheck import probe_host

REPO = Path(__file__).resolve().parents[1]
PRODUCTION_ENV = {"DJANGO_SETTINGS_MODULE": "config.settings.production", "ALLOWED_HOSTS": "testserver",
                  "SECRET_KEY": "a-production-secret-key-that-is-long-and-random-9f8e7d6c5b4a3210zyxwvu"}


def stages() -> dict[str, str]:
    """Dockerfile stage name -> its text (FROM line included)."""
    text = (REPO / "Dockerfile").read_text()
    found = {}
    for chunk in re.split(r"^(?=FROM )", text, flags=re.M)[1:]:
        match = re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", chunk)
        assert match, f"every stage is named: {chunk.splitlines()[0]}"
        found[match.group(2)] = chunk
    return found


def test_dockerfile_base_images_are_build_arguments_with_official_defaults():
    text = (REPO / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax=", text, flags=re.M), "a syntax line makes BuildKit pull a frontend image"
    assert re.search(r"^ARG PYTHON_BASE=python:3\.11-slim$", text, flags=re.M)
    assert re.search(r"^ARG GPU_BASE=tensorflow/tensorflow:2\.21\.0-gpu$", text, flags=re.M)
    assert re.search(r"^ARG DEBIAN_BASE=debian:bookworm-slim$", text, flags=re.M)
    names = set(stages())
    for name, stage in stages().items():
        base = stage.split()[1]
        assert base.startswith("${") or base in names, f"stage {name} starts from a literal image {base}"
    assert {"web", "worker", "worker-gpu", "postgres", "redis", "s3", "python-local"} <= names


def test_final_stages_run_as_a_service_user_with_read_only_code():
    all_stages = stages()
    for name in ("web", "worker", "worker-gpu", "postgres", "redis", "s3"):
        stage = all_stages[name]
        users = re.findall(r"^USER (\S+)", stage, flags=re.M)
        assert users and users[-1] not in {"root", "0"}, f"{name} must drop root"
        assert "--chown" not in stage, f"{name}: code must stay root-owned (read-only for the service user)"
    assert "HEALTHCHECK" in all_stages["web"] and "config/healthcheck.py" in all_stages["web"]
    assert "HEALTHCHECK" in all_stages["worker"]


def test_package_installs_get_the_ca_bundle_only_as_a_build_secret():
    text = (REPO / "Dockerfile").read_text()
    assert "ca-certificates.crt" not in text.replace("src=/etc/ssl/certs/ca-certificates.crt", "")
    for name, stage in stages().items():
        for instruction in re.findall(r"^RUN (?:.*\\\n)*.*$", stage, flags=re.M):
            if "pip install" in instruction:
                assert "--mount=type=secret,id=ca" in instruction, f"{name}: pip install without the CA secret"
                assert "PIP_CERT=/run/secrets/ca" in instruction
        assert not re.search(r"^(COPY|ADD) .*(\.crt|\.pem|\.env)\b", stage, flags=re.M), f"{name} copies a secret"


def test_web_image_installs_only_the_web_requirements():
    all_stages = stages()
    assert "requirements-web.txt" in all_stages["build-web"]
    assert "requirements.txt" not in all_stages["build-web"].replace("requirements-web.txt", "")
    assert "COPY --from=build-web /opt/venv" in all_stages["web"]
    web_pins = [line for line in (REPO / "requirements-web.txt").read_text().lower().splitlines()
                if not line.startswith("#")]
    assert not [line for line in web_pins if line.startswith(("tensorflow", "keras"))]
    assert "-r requirements-web.txt" in (REPO / "requirements.txt").read_text()
    assert "tensorflow==2.21.0" in (REPO / "requirements.txt").read_text()
    # Celery app moved to config/: no image may still start `-A clinic`.
    assert "-A clinic" not in (REPO / "Dockerfile").read_text()


def test_requirements_are_pinned():
    for name in ("requirements.txt", "requirements-web.txt", "requirements-dev.txt"):
        for line in (REPO / name).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r")):
                assert "==" in line, f"{name}: {line} is not pinned"


def run_python(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DJANGO_ALLOW_ASYNC_UNSAFE", "DATABASE_URL"}}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=180,
                          env={**clean, "LESIONTRACK_VAR_DIR": str(tmp_path), **env})


WEB_IMPORTS = """
import importlib.abc, json, os, sys
from importlib import metadata
allowed = set(json.loads(os.environ["WEB_DISTRIBUTIONS"]))
providers = metadata.packages_distributions()
blocked = []

class OnlyWebRequirements(importlib.abc.MetaPathFinder):
    # What the web image has: a package outside requirements-web.txt cannot be imported.
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        dists = {d.lower().replace("_", "-") for d in providers.get(top, [])}
        if dists and not dists & allowed:
            blocked.append(top)
            raise ModuleNotFoundError(f"No module named {top!r} (not in requirements-web.txt)", name=top)
        return None

sys.meta_path.insert(0, OnlyWebRequirements())
import django
django.setup()
import config.wsgi, config.urls, lesions.views, clinic.views, lesions.tasks
# What the deployment connects to, imported lazily on first use: Redis broker, S3 storage, PostgreSQL.
import kombu.transport.redis, storages.backends.s3, django.db.backends.postgresql.base
from config.celery import app
app.loader.import_default_modules()
from django.test import Client
assert Client().get('/accounts/login/', secure=True).status_code == 200
print(json.dumps({"modules": sorted(sys.modules), "blocked": sorted(set(blocked))}))
"""


def web_distributions() -> set[str]:
    """requirements-web.txt and everything those packages depend on (what pip installs in the web image)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    allowed: set[str] = set()
    pending = [Requirement(line.strip()).name for line in (REPO / "requirements-web.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in allowed:
            continue
        allowed.add(name)
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return allowed


def test_the_web_process_runs_on_requirements_web_alone(tmp_path):
    """The web image has requirements-web.txt only: importing anything else would crash it at start.
    Optional imports (kombu's yaml, celery's greenlet) fall back as they do in the image."""
    result = run_python(WEB_IMPORTS, {**PRODUCTION_ENV, "WEB_DISTRIBUTIONS": json.dumps(sorted(web_distributions()))},
                        tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "tensorflow" not in loaded["modules"] and "keras" not in loaded["modules"]
    assert "tensorflow" not in web_distributions()


def test_production_healthz_is_exempt_from_the_https_redirect(tmp_path):
    code = ("import django; django.setup(); from django.test import Client; c = Client(); "
            "print(c.get('/healthz').status_code, c.get('/accounts/login/').status_code, "
            "c.get('/accounts/login/', headers={'X-Forwarded-Proto': 'https'}).status_code)")
    result = run_python(code, {**PRODUCTION_ENV, "TRUSTED_PROXY_COUNT": "1"}, tmp_path)  # the TLS proxy, declared
    assert result.returncode == 0, result.stderr
    healthz, page, proxied_page = result.stdout.strip().splitlines()[-1].split()
    assert healthz in {"200", "503"}, "the container probe talks plain http to /healthz"
    assert page == "301", "every other page still redirects to https"
    assert proxied_page == "200", "behind the TLS proxy (X-Forwarded-Proto: https) pages are served"


@pytest.mark.parametrize(("allowed", "host"), [
    ("clinic.example.org,localhost", "clinic.example.org"), (".example.org", "example.org"),
    ("*", "localhost"), ("", "localhost"), (" localhost ", "localhost")])
def test_healthcheck_probes_with_an_allowed_host(allowed, host):
    assert probe_host(allowed) == host


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_runs_the_whole_stack_from_images_built_here():
    services = compose()["services"]
    assert {"postgres", "redis", "s3", "migrate", "web", "worker", "beat"} <= set(services)
    assert services["web"]["build"]["target"] == "web"
    assert services["worker"]["build"]["target"] == "worker"
    assert services["s3"]["build"]["target"] == "s3"
    for name in ("postgres", "redis"):
        assert re.fullmatch(r"\$\{[A-Z_]+_IMAGE:-[a-z0-9]+:\d+\}", services[name]["image"]), name
    env = services["web"]["environment"]
    assert env["CELERY_BROKER_URL"].startswith("redis://:${REDIS_PASSWORD:?")
    assert env["DATABASE_URL"].startswith("postgres://lesiontrack:${POSTGRES_PASSWORD:?")
    assert env["STORAGE_BACKEND"] == "s3"
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["beat"]["command"][:3] == ["celery", "-A", "config"]


def test_compose_is_a_usable_deployment_without_literal_secrets():
    data = compose()
    services = data["services"]
    for name, service in services.items():
        if name != "migrate":
            assert service.get("restart") == "unless-stopped", f"{name} needs a restart policy"
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|_KEY", key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", str(value)), f"{name}.{key} must come from .env"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in data["volumes"], f"{name}: {volume} is not a named volume"
    assert "--requirepass" in " ".join(services["redis"]["command"])
    text = (REPO / "docker-compose.yml").read_text()
    assert "SECURE_SSL_REDIRECT" not in text, "production's https redirect stays on"
    example = (REPO / ".env.example").read_text()
    for variable in ("SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "S3_SECRET_ACCESS_KEY", "ALLOWED_HOSTS"):
        assert re.search(rf"^{variable}=", example, flags=re.M), f".env.example lacks {variable}"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()
    assert ".env" in (REPO / ".dockerignore").read_text().splitlines()
