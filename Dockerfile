# syntax=docker/dockerfile:1
# Targets: web (gunicorn), worker (CPU Celery worker), worker-gpu (TensorFlow GPU base).
# All run as a non-root user; media and the database live outside the image.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=config.settings.production \
    LESIONTRACK_VAR_DIR=/var/lib/lesiontrack
RUN useradd --system --uid 10001 --home /app lesiontrack \
    && mkdir -p /var/lib/lesiontrack && chown lesiontrack /var/lib/lesiontrack
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=lesiontrack . /app
USER lesiontrack

FROM runtime AS web
# collectstatic needs a key to import settings; the real one comes from the environment at run time.
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput -v 0
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60"]

FROM runtime AS worker
CMD ["celery", "-A", "config", "worker", "-Q", "gpu,default", "-c", "1", "-l", "INFO"]

# GPU workers: TensorFlow's GPU image carries CUDA; the same TensorFlow version as on CPU.
FROM tensorflow/tensorflow:2.21.0-gpu AS worker-gpu
ENV PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=config.settings.production LESIONTRACK_VAR_DIR=/var/lib/lesiontrack
RUN useradd --system --uid 10001 --home /app lesiontrack \
    && mkdir -p /var/lib/lesiontrack && chown lesiontrack /var/lib/lesiontrack
COPY requirements.txt /tmp/requirements.txt
RUN grep -v -E '^(tensorflow|keras)==' /tmp/requirements.txt > /tmp/req-gpu.txt \
    && pip install --no-cache-dir -r /tmp/req-gpu.txt "tensorflow[and-cuda]==2.21.0" "keras==3.15.1"
WORKDIR /app
COPY --chown=lesiontrack . /app
USER lesiontrack
# One process per GPU: run one container per device with CUDA_VISIBLE_DEVICES set.
CMD ["celery", "-A", "config", "worker", "-Q", "gpu", "-c", "1", "-P", "solo", "-l", "INFO"]
