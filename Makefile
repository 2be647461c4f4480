# LesionTrack: `make run` starts the app on embedded defaults, `make test` runs every test,
# `make bench` runs the benchmarks, `make docker-test` builds the images and runs the compose stack. Each creates .venv and installs pinned requirements first.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test test-fast lint mutation bench install install-dev browser-deps js-deps test-tools clean docker-test docker-images

$(VENV)/.installed-runtime: requirements.txt requirements-web.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; try: make PYTHON=python3 ..."; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-runtime requirements-dev.txt
	$(PIP) install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed-runtime
install-dev: $(VENV)/.installed-dev

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py seed_demo
	$(PY) manage.py run_local

# Browser tests need Debian's chromium (Playwright's own browser download does not work offline).
browser-deps:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# axe-core for the accessibility browser tests, pinned by package-lock.json (test-only, never served).
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
js-deps: node_modules/.package-lock.json

# DICOM exports are checked by dciodvfy from Debian's dicom3tools; the README's API examples
# run with curl and jq.
test-tools:
	@command -v dciodvfy >/dev/null && command -v jq >/dev/null && command -v curl >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools jq curl >/dev/null; }

test: install-dev browser-deps js-deps test-tools
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) -m pytest $(PYTEST_ARGS)

# Mutation testing of the clinical and security core with mutmut ([tool.mutmut] in pyproject.toml):
# every mutant of lesions/staging.py, stage_note.py, images.py, lesions/selectors.py, clinic/selectors.py,
# clinic/audit.py and clinic/admin_scoping.py against the fast tests that reach it, then the score per
# module (tests/support/mutation_score.py; equivalent mutants are listed in docs/mutation.md). Not part
# of `make test` or CI: docs/mutation.md gives its run time. Uses the database `make test` uses.
MUTATION_JOBS ?= 2
mutation: install-dev
	rm -rf mutants
	@start=$$(date +%s); $(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS) >mutants.log 2>&1 || \
	  { tail -50 mutants.log; exit 1; }; echo "mutmut run: $$(( $$(date +%s) - start )) s (log: mutants.log)"
	$(PY) -m tests.support.mutation_score

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

bench: install-dev
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	DJANGO_SETTINGS_MODULE=config.settings.dev $(PY) bench/run_all.py

# Docker (root; needs dockerd, BuildKit, and with DOCKER_BASES=local debootstrap): build the web, worker
# and service images, bring up docker-compose.yml, log in, upload an image, see the worker analyse it,
# tear down; prints image sizes and step timings (bench-results/docker-stack.json). About 20 minutes
# cold on 2 cores, so CI does not run it (README, "Docker").
DOCKER_BASES ?= local
docker-test: install-dev
	$(PY) tests/docker/run_stack.py --bases $(DOCKER_BASES)

# The images compose runs by default (tag latest); DOCKER_GPU=1 adds worker-gpu.
docker-images: install-dev
	$(PY) tests/docker/run_stack.py --bases $(DOCKER_BASES) --build-only --tag latest $(if $(DOCKER_GPU),--gpu)

clean:
	rm -rf $(VENV) var/broker var/staticfiles node_modules
