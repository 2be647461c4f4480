"""`make docker-test`: build the images, run the whole compose stack, use it as a clinician would.

Steps (each timed): local base images (with --bases local: Debian bookworm by debootstrap, turned into
an image with `docker import`, then python3.11 from Debian packages), the web / worker / postgres /
redis / s3 images (BuildKit; the host's CA bundle is handed to package installs as a build secret),
checks on the images (sizes, non-root user, read-only code, no compilers, pip or caches, no
TensorFlow in web, no secret in any layer), `compose up`, /healthz and the web container's own
HEALTHCHECK, a login, a patient, a lesion, a real image uploaded through the web container, its
analysis by the worker container, the overlay read through the checked view, and `compose down -v`.

Prints a table of image sizes and step timings and writes them as JSON (bench-results/docker-stack.json).
Exit status 0 only when every check held. Needs root (dockerd, debootstrap) and about 10 GB of disk.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
PROJECT = "lesiontrack-dockertest"
DEBIAN_BASE = "lesiontrack/bookworm-minbase:local"
PYTHON_LOCAL = "lesiontrack/python:3.11-local"
CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
# ../shared beside the checkout (a worktree under wt/ has it two levels up).
SHARED_IMAGES = next((p / "shared" / "data" / "lesions-dev" / "images" for p in (REPO.parent, REPO.parent.parent)
                      if (p / "shared" / "data" / "lesions-dev" / "images").is_dir()), REPO.parent / "shared")
USERNAME, PASSWORD = "docker-test", "docker-test-" + secrets.token_hex(8)

timings: list[tuple[str, float]] = []
sizes: dict[str, int] = {}


class CheckFailed(AssertionError):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@contextmanager
def step(name: str) -> Iterator[None]:
    print(f"==> {name}", flush=True)
    started = time.monotonic()
    try:
        yield
    finally:
        timings.append((name, time.monotonic() - started))
        print(f"    {name}: {timings[-1][1]:.1f} s", flush=True)


def run(cmd: list[str], *, capture: bool = False, check_rc: bool = True, env: dict | None = None,
        stdin: bytes | None = None, timeout: float = 3600) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, input=stdin, capture_output=capture, env=env, timeout=timeout)
    if check_rc and result.returncode != 0:
        detail = (result.stderr or b"").decode(errors="replace")[-4000:] if capture else ""
        raise CheckFailed(f"{' '.join(cmd[:6])}… exited {result.returncode}\n{detail}")
    return result


def docker_cli() -> list[str]:
    """A docker CLI that can use BuildKit: one with buildx, else Debian's 20.10 CLI (BuildKit built in)."""
    if os.environ.get("DOCKER"):
        return [os.environ["DOCKER"]]
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode == 0:
        return ["docker"]
    if Path("/usr/bin/docker").exists():
        return ["/usr/bin/docker"]
    return ["docker"]


def compose_cli(docker: list[str]) -> list[str]:
    if os.environ.get("COMPOSE"):
        return os.environ["COMPOSE"].split()
    if subprocess.run([*docker, "compose", "version"], capture_output=True).returncode == 0:
        return [*docker, "compose"]
    check(shutil.which("docker-compose"), "neither `docker compose` nor docker-compose is installed")
    return ["docker-compose"]


def image_exists(docker: list[str], name: str) -> bool:
    return run([*docker, "image", "inspect", name], capture=True, check_rc=False).returncode == 0


def make_debian_base(docker: list[str]) -> None:
    """Debian bookworm from Debian's own packages, without caches, imported as an image."""
    check(shutil.which("debootstrap"), "debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="bookworm-") as root:
        run(["debootstrap", "--variant=minbase", "bookworm", root, "http://deb.debian.org/debian"], capture=True)
        (Path(root) / "etc/apt/sources.list").write_text(
            "deb http://deb.debian.org/debian bookworm main\n"
            "deb http://deb.debian.org/debian bookworm-updates main\n"
            "deb http://deb.debian.org/debian-security bookworm-security main\n")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                         "usr/share/info"):
            for child in (Path(root) / leftover).glob("*"):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                elif child.name != "lock":
                    child.unlink()
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run([*docker, "import", "--change", 'CMD ["/bin/bash"]', "-", DEBIAN_BASE],
                                  stdin=tar.stdout, capture_output=True)
        check(tar.wait() == 0 and imported.returncode == 0, f"docker import failed: {imported.stderr.decode()}")


def build(docker: list[str], target: str, tag: str, build_args: dict[str, str]) -> None:
    cmd = [*docker, "build", "--target", target, "-t", tag, "--progress", "plain"]
    for key, value in build_args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    if CA_BUNDLE.exists():
        cmd += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    log = REPO / "bench-results" / f"docker-build-{target}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("wb") as out:
        result = subprocess.run([*cmd, str(REPO)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "DOCKER_BUILDKIT": "1"})
    check(result.returncode == 0, f"building {target} failed; see {log}")
    sizes[tag] = int(run([*docker, "image", "inspect", "-f", "{{.Size}}", tag], capture=True).stdout)


def in_image(docker: list[str], image: str, script: str) -> str:
    result = run([*docker, "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script],
                 capture=True, check_rc=False)
    check(result.returncode == 0, f"{image}: check failed: {script}\n{result.stdout.decode()}{result.stderr.decode()}")
    return result.stdout.decode()


def ca_marker() -> bytes | None:
    """A line of the last certificate in the host's CA bundle (a proxy's own CA is appended last)."""
    if not CA_BUNDLE.exists():
        return None
    blocks = CA_BUNDLE.read_text().split("-----BEGIN CERTIFICATE-----")
    lines = [line for line in blocks[-1].splitlines() if line and not line.startswith("-----")]
    return lines[len(lines) // 2].encode() if lines else None


def check_image(docker: list[str], image: str, *, web: bool) -> None:
    """Lean and safe: non-root, code read-only for that user, no build tools or caches, no secrets."""
    user = run([*docker, "image", "inspect", "-f", "{{.Config.User}}", image], capture=True).stdout.decode().strip()
    check(user and user not in {"root", "0"}, f"{image} runs as root")
    in_image(docker, image, "test \"$(id -u)\" != 0")
    in_image(docker, image, "! touch /app/config/__init__.py 2>/dev/null && ! touch /app/new-file 2>/dev/null"
                            " && ! touch /opt/venv/lib/x 2>/dev/null")
    in_image(docker, image, "touch /var/lib/lesiontrack/probe && rm /var/lib/lesiontrack/probe")
    in_image(docker, image, "for tool in gcc cc g++ make pip pip3; do ! command -v $tool >/dev/null || exit 1; done;"
                            " test ! -e /opt/venv/bin/pip && test ! -d /root/.cache/pip && test ! -e /run/secrets/ca"
                            " && test -z \"$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)\"")
    has_tf = in_image(docker, image,
                      "python -c \"import importlib.util as u; print(u.find_spec('tensorflow') is not None)\"")
    check(has_tf.strip() == ("False" if web else "True"), f"{image}: TensorFlow installed = {has_tf.strip()}")
    history = run([*docker, "history", "--no-trunc", "--format", "{{.CreatedBy}}", image], capture=True).stdout.decode()
    for forbidden in ("ca-certificates.crt", "PIP_CERT=/etc", "SECRET_KEY=" + os.environ.get("SECRET_KEY", "\0"),
                      "PASSWORD=", "BEGIN CERTIFICATE"):
        check(forbidden not in history, f"{image}: docker history shows {forbidden!r}")
    marker = ca_marker()
    if marker:
        saved = subprocess.Popen([*docker, "save", image], stdout=subprocess.PIPE)
        found, tail = False, b""
        while chunk := saved.stdout.read(1 << 20):
            if marker in tail + chunk:
                found = True
            tail = chunk[-len(marker):]
        saved.wait()
        check(not found, f"{image}: the build's CA bundle ended up in a layer")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lesion_image() -> tuple[str, bytes, str]:
    """A real dermoscopic image from ../shared/data when present, else a drawn pigmented lesion."""
    for path in sorted(SHARED_IMAGES.glob("*.jpg"))[:1]:
        return path.name, path.read_bytes(), "ISIC image from ../shared/data"
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(7)
    skin = np.clip(rng.normal([205, 160, 140], 8, (600, 800, 3)), 0, 255).astype("uint8")
    image = Image.fromarray(skin)
    ImageDraw.Draw(image).ellipse((260, 180, 560, 430), fill=(95, 60, 45))
    image = image.filter(ImageFilter.GaussianBlur(6))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return "drawn-lesion.jpg", out.getvalue(), "drawn lesion (../shared/data absent)"


class Clinician:
    """A browser-like client behind the TLS proxy: sends X-Forwarded-Proto, Origin and Referer.

    Production settings mark cookies Secure; the test talks plain http to 127.0.0.1 as the proxy
    would, so it keeps the cookies itself instead of letting requests drop them."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.host = base.split("//", 1)[1]
        self.session = requests.Session()
        self.session.headers.update({"X-Forwarded-Proto": "https", "Origin": f"https://{self.host}"})

    def _keep_cookies(self) -> None:
        for cookie in self.session.cookies:
            cookie.secure = False

    def get(self, path: str, **kwargs) -> requests.Response:
        response = self.session.get(self.base + path, headers={"Referer": f"https://{self.host}{path}"},
                                    allow_redirects=False, timeout=60, **kwargs)
        self._keep_cookies()
        return response

    def post(self, path: str, data: dict, files: dict | None = None) -> requests.Response:
        data = {**data, "csrfmiddlewaretoken": self.session.cookies.get("csrftoken", "")}
        response = self.session.post(self.base + path, data=data, files=files, allow_redirects=False, timeout=120,
                                     headers={"Referer": f"https://{self.host}{path}"})
        self._keep_cookies()
        return response


def wait_for(what: str, probe, timeout: float, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except (requests.RequestException, CheckFailed) as exc:
            last = exc
        time.sleep(interval)
    raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", choices=["local", "official"], default=os.environ.get("DOCKER_BASES", "local"),
                        help="local: Debian bookworm by debootstrap (no registry pull); official: python:3.11-slim etc.")
    parser.add_argument("--keep", action="store_true", help="leave the stack running (for debugging)")
    parser.add_argument("--build-only", action="store_true", help="build and check the images, start no stack")
    parser.add_argument("--tag", default="test", help="image tag (make docker-images: latest, compose's default)")
    parser.add_argument("--gpu", action="store_true", help="also build the worker-gpu target (several GB)")
    parser.add_argument("--json", type=Path, default=REPO / "bench-results" / "docker-stack.json")
    args = parser.parse_args()
    docker = docker_cli()
    compose = compose_cli(docker)
    run([*docker, "info"], capture=True)

    build_args: dict[str, str] = {}
    service_images = {"POSTGRES_IMAGE": "postgres:15", "REDIS_IMAGE": "redis:7"}
    if args.bases == "local":
        with step("base: debootstrap bookworm + docker import"):
            if not image_exists(docker, DEBIAN_BASE):
                make_debian_base(docker)
            sizes[DEBIAN_BASE] = int(run([*docker, "image", "inspect", "-f", "{{.Size}}", DEBIAN_BASE],
                                         capture=True).stdout)
        with step("base: python3.11 from Debian packages"):
            build(docker, "python-local", PYTHON_LOCAL, {"DEBIAN_BASE": DEBIAN_BASE})
        build_args = {"PYTHON_BASE": PYTHON_LOCAL, "DEBIAN_BASE": DEBIAN_BASE}
        build_args["GPU_BASE"] = PYTHON_LOCAL
        service_images = {"POSTGRES_IMAGE": f"lesiontrack-postgres:{args.tag}",
                          "REDIS_IMAGE": f"lesiontrack-redis:{args.tag}"}

    images = {"WEB_IMAGE": f"lesiontrack-web:{args.tag}", "WORKER_IMAGE": f"lesiontrack-worker:{args.tag}",
              "S3_IMAGE": f"lesiontrack-s3:{args.tag}", **service_images}
    targets = {"WEB_IMAGE": "web", "WORKER_IMAGE": "worker", "S3_IMAGE": "s3", "POSTGRES_IMAGE": "postgres",
               "REDIS_IMAGE": "redis"}
    for key, tag in images.items():
        if args.bases == "official" and key in service_images:
            continue
        with step(f"build {targets[key]}"):
            build(docker, targets[key], tag, build_args)

    if args.gpu:
        with step("build worker-gpu"):
            build(docker, "worker-gpu", f"lesiontrack-worker-gpu:{args.tag}", build_args)

    with step("check images (user, read-only code, no tools/caches/secrets, TF only in worker)"):
        check_image(docker, images["WEB_IMAGE"], web=True)
        check_image(docker, images["WORKER_IMAGE"], web=False)
        if args.gpu:
            check_image(docker, f"lesiontrack-worker-gpu:{args.tag}", web=False)
    if args.build_only:
        report({"bases": args.bases, "ok": True}, args.json)
        return 0

    web_port, s3_port = free_port(), free_port()
    env_values = {
        "SECRET_KEY": secrets.token_hex(32), "POSTGRES_PASSWORD": secrets.token_hex(24),
        "REDIS_PASSWORD": secrets.token_hex(24), "S3_ACCESS_KEY_ID": "lesiontrack",
        "S3_SECRET_ACCESS_KEY": secrets.token_hex(24), "S3_BUCKET": "lesiontrack",
        "ALLOWED_HOSTS": "localhost", "CSRF_TRUSTED_ORIGINS": f"https://localhost:{web_port}",
        "WEB_PORT": str(web_port), "S3_PORT": str(s3_port), **images,
    }
    env_file = Path(tempfile.mkstemp(prefix="lesiontrack-docker-", suffix=".env")[1])
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env_values.items()))
    env_file.chmod(0o600)
    dc = [*compose, "--project-name", PROJECT, "--file", str(REPO / "docker-compose.yml"),
          "--env-file", str(env_file)]
    result: dict[str, object] = {"bases": args.bases, "ok": False}
    try:
        with step("compose up (postgres, redis, s3, migrate, web, worker, beat)"):
            run([*dc, "up", "-d", "--no-build"], capture=True, timeout=900)
        base = f"http://localhost:{web_port}"
        with step("web answers /healthz 200 ok (plain http, production settings)"):
            def healthz() -> dict | None:
                response = requests.get(base + "/healthz", timeout=10)
                if response.status_code != 200:
                    return None
                health = response.json()
                # "degraded" while the worker container still loads TensorFlow and its models:
                # wait for every part to answer, keeping the last answer for the failure message.
                check(health["status"] == "ok", f"/healthz: {health}")
                return health
            wait_for("/healthz ok", healthz, 300)
            redirect = requests.get(base + "/accounts/login/", allow_redirects=False, timeout=10)
            check(redirect.status_code == 301 and redirect.headers["Location"].startswith("https://"),
                  f"plain http to a page must redirect to https, got {redirect.status_code}")
        with step("web container HEALTHCHECK reports healthy"):
            web_id = run([*dc, "ps", "-q", "web"], capture=True).stdout.decode().strip()

            def healthy() -> bool:
                status = run([*docker, "inspect", "-f", "{{.State.Health.Status}}", web_id], capture=True)
                return status.stdout.decode().strip() == "healthy"
            wait_for("web HEALTHCHECK", healthy, 180, interval=3)
            logs = run([*dc, "logs", "--no-color", "web"], capture=True).stdout.decode()
            check("Control server error" not in logs and "Permission denied" not in logs, f"web logs:\n{logs[-3000:]}")

        with step("create a clinician (manage.py shell in the web container)"):
            create_user = (
                "from django.contrib.auth import get_user_model; from clinic.models import Clinic, Membership; "
                f"u = get_user_model().objects.create_user({USERNAME!r}, password={PASSWORD!r}); "
                "c = Clinic.objects.create(name='Docker test clinic'); Membership.objects.create(user=u, clinic=c)")
            run([*dc, "exec", "-T", "web", "python", "manage.py", "shell", "-c", create_user], capture=True)

        clinician = Clinician(base)
        with step("log in, create a patient and a lesion"):
            clinician.get("/accounts/login/")
            response = clinician.post("/accounts/login/", {"username": USERNAME, "password": PASSWORD})
            check(response.status_code == 302, f"login answered {response.status_code}")
            response = clinician.post("/patients/new/", {
                "identifier": "DOCKER-1", "name": "Docker Test", "date_of_birth": "1970-01-01", "sex": "female",
                "skin_type": "II", "notes": "", "clinic": clinic_id(dc)})
            check(response.status_code == 302, f"patient create answered {response.status_code}: {response.text[:500]}")
            patient_path = response.headers["Location"]
            patient_id = int(re.search(r"/patients/(\d+)/", patient_path).group(1))
            response = clinician.post(f"/patients/{patient_id}/lesions/new/", {
                "label": "Left shoulder", "body_site": "posterior torso", "status": "monitoring", "notes": ""})
            check(response.status_code == 302, f"lesion create answered {response.status_code}: {response.text[:500]}")
            lesion_id = int(re.search(r"/lesions/(\d+)/", response.headers["Location"]).group(1))

        name, data, source = lesion_image()
        result["image"] = source
        with step("upload a real image through the web container"):
            response = clinician.post(f"/lesions/{lesion_id}/captures/", {"modality": "dermoscopic", "device": ""},
                                      files={"images": (name, data, "image/jpeg")})
            check(response.status_code == 302, f"upload answered {response.status_code}: {response.text[:800]}")

        with step("worker container analyses it"):
            def analysed() -> dict | None:
                rows = clinician.get(f"/lesions/{lesion_id}/statuses.json").json()["analyses"]
                check(rows, "no analysis was queued")
                check(rows[0]["status"] != "failed", f"analysis failed: {rows[0]}")
                return rows[0] if rows[0]["status"] == "done" else None
            analysis = wait_for("the analysis", analysed, 600, interval=3)
            worker_host = run([*docker, "inspect", "-f", "{{.Config.Hostname}}",
                               run([*dc, "ps", "-q", "worker"], capture=True).stdout.decode().strip()],
                              capture=True).stdout.decode().strip()
            which_worker = f"from lesions.models import Analysis; print(Analysis.objects.get(pk={analysis['id']}).worker)"
            worker_of = run([*dc, "exec", "-T", "web", "python", "manage.py", "shell", "-c", which_worker],
                            capture=True).stdout.decode().strip()
            check(worker_host in worker_of, f"analysis ran on {worker_of!r}, not the worker container {worker_host}")
            result["probability"] = analysis["probability"]

        with step("read the overlay through the checked view"):
            response = clinician.get(f"/captures/{analysis['capture_id']}/image/overlay/")
            check(response.status_code in (200, 302), f"overlay view answered {response.status_code}")
            if response.status_code == 302:  # S3: a presigned URL, signed for the compose-internal host
                location = requests.utils.urlparse(response.headers["Location"])
                check("X-Amz-Signature" in location.query, f"not a presigned URL: {response.headers['Location']}")
                response = requests.get(f"http://127.0.0.1:{s3_port}{location.path}?{location.query}",
                                        headers={"Host": location.netloc}, timeout=30)
                check(response.status_code == 200, f"presigned overlay answered {response.status_code}")
                anonymous = requests.get(f"http://127.0.0.1:{s3_port}{location.path}",
                                         headers={"Host": location.netloc}, timeout=30)
                check(anonymous.status_code in (401, 403), f"bucket is public: {anonymous.status_code}")
            check(response.content[:8] == b"\x89PNG\r\n\x1a\n" or response.content[:3] == b"\xff\xd8\xff",
                  "overlay is not an image")
            logged_out = requests.get(base + f"/captures/{analysis['capture_id']}/image/overlay/",
                                      headers={"X-Forwarded-Proto": "https"}, allow_redirects=False, timeout=30)
            check(logged_out.status_code == 302 and "/accounts/login/" in logged_out.headers["Location"],
                  f"overlay without login answered {logged_out.status_code}")
        result["ok"] = True
    except CheckFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        logs = run([*dc, "logs", "--no-color", "--tail", "60"], capture=True, check_rc=False).stdout.decode()
        print(logs[-12000:], file=sys.stderr)
    finally:
        if not args.keep:
            with step("compose down -v"):
                run([*dc, "down", "-v", "--remove-orphans"], capture=True, check_rc=False, timeout=300)
            env_file.unlink(missing_ok=True)

    report(result, args.json)
    return 0 if result["ok"] else 1


def report(result: dict, path: Path) -> None:
    print("\nimage                                  size (MB)")
    for tag, size in sizes.items():
        print(f"{tag:<38} {size / 1e6:>9.0f}")
    print("\nstep                                                              seconds")
    for name, seconds in timings:
        print(f"{name:<64} {seconds:>8.1f}")
    print(f"{'total':<64} {sum(s for _, s in timings):>8.1f}")
    result.update({"image_bytes": sizes, "step_seconds": dict(timings)})
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"\n{'1 passed, 0 failed' if result['ok'] else '0 passed, 1 failed'}: docker stack test ({path})")


def clinic_id(dc: list[str]) -> str:
    out = run([*dc, "exec", "-T", "web", "python", "manage.py", "shell", "-c",
               "from clinic.models import Clinic; print(Clinic.objects.get(name='Docker test clinic').pk)"],
              capture=True).stdout.decode()
    return out.strip().splitlines()[-1]


if __name__ == "__main__":
    sys.exit(main())
