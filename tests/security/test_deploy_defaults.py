"""Deployment defaults: no literal secrets in compose, Redis behind a password, the proxy's HTTPS
header trusted only when a proxy is declared, no demo accounts in production."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.security
VARIABLE = r"\$\{([A-Z][A-Z0-9_]*)(:\?[^}]*)?\}"  # ${NAME} or ${NAME:?message}: from .env, no default


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def every_value(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from every_value(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from every_value(value, f"{path}[{i}]")
    else:
        yield path, str(node)


def test_compose_holds_no_literal_passwords(compose):
    for path, value in every_value(compose):
        if re.search(r"(PASSWORD|SECRET)[^.]*$", path):
            assert re.fullmatch(VARIABLE, value), f"{path} is a literal: {value!r}"
        for url in re.findall(r"[a-z]+://[^\s\"']+", value):
            credentials = re.match(r"[a-z]+://([^@/]*)@", url)
            if credentials:
                password = credentials.group(1).partition(":")[2]
                assert re.fullmatch(VARIABLE, password), f"{path} has a literal password in {url}"


def test_compose_redis_requires_a_password_and_clients_send_it(compose):
    redis = compose["services"]["redis"]
    command = redis["command"]
    if isinstance(command, list) and command[:2] == ["sh", "-c"]:
        command = command[2]  # a shell line, so the password is read from the container's environment
    words = shlex.split(command) if isinstance(command, str) else command
    assert "--requirepass" in words
    password = words[words.index("--requirepass") + 1]
    from_shell = re.fullmatch(r"\$\$\{?([A-Z][A-Z0-9_]*)\}?", password)  # $$NAME: compose's escaped $NAME
    if from_shell:
        password = str(redis["environment"][from_shell.group(1)])
    variable = re.fullmatch(VARIABLE, password)
    assert variable, f"Redis's password is a literal: {password!r}"
    if "healthcheck" in redis:  # its ping is a client too: without the password it gets NOAUTH
        assert re.search(rf"\$\$\{{?{variable.group(1)}\b|\$\{{{variable.group(1)}[:}}]",
                         str(redis["healthcheck"]["test"]))
    clients = {name for name, service in compose["services"].items() if "redis" in service.get("depends_on", {})}
    clients |= {name for name, service in compose["services"].items()
                if "CELERY_BROKER_URL" in (service.get("environment") or {})}
    assert {"web", "worker"} <= clients
    for name in clients:
        broker = compose["services"][name]["environment"]["CELERY_BROKER_URL"]
        assert re.match(rf"redis://:\$\{{{variable.group(1)}[:}}]", broker), f"{name}: {broker}"


def production_settings(env: dict[str, str], tmp_path) -> dict:
    code = ("import django, json; from django.conf import settings; django.setup(); "
            "print(json.dumps({'proxy_ssl': settings.SECURE_PROXY_SSL_HEADER, 'production': settings.PRODUCTION}))")
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TRUSTED_PROXY_COUNT"}}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**base, "DJANGO_SETTINGS_MODULE": "config.settings.production",
                                 "LESIONTRACK_VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 60, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_proxy_https_header_is_trusted_only_behind_a_declared_proxy(tmp_path):
    assert production_settings({}, tmp_path) == {"proxy_ssl": None, "production": True}
    assert production_settings({"TRUSTED_PROXY_COUNT": "1"}, tmp_path)["proxy_ssl"] == ["HTTP_X_FORWARDED_PROTO",
                                                                                         "https"]


@pytest.mark.django_db
def test_seed_demo_refuses_production_settings(settings):
    from django.contrib.auth import get_user_model

    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo")
    assert not get_user_model().objects.filter(username__in=["demo", "admin"]).exists()
    settings.PRODUCTION = False
    call_command("seed_demo")
    assert get_user_model().objects.filter(username="admin", is_superuser=True).exists()
