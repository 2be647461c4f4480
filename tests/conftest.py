from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, testcases

from tests.factories import ClinicFactory, LesionFactory, MembershipFactory, PatientFactory, UserFactory
from tests.support.processes import start_worker, stop_process

SERVICE_SKIP_TAG = "[needs-service]"


def _no_public_media(app):
    return app


# Django's live server would publish MEDIA_ROOT under MEDIA_URL; patient images are never public
# here (MEDIA_URL is None), so every live server serves the application alone, as gunicorn does.
testcases._MediaFilesHandler = _no_public_media


def using_postgres() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def using_redis() -> bool:
    return os.environ.get("CELERY_BROKER_URL", "").startswith("redis://")


def require_service(condition: bool, what: str) -> None:
    """Skip when a real service is not configured; under LESIONTRACK_REQUIRE_SERVICES=1 (CI)
    such a skip turns into a failure (see pytest_runtest_makereport)."""
    if not condition:
        pytest.skip(f"{SERVICE_SKIP_TAG} needs {what}")


@pytest.fixture
def data_generation_kept(request) -> None:
    """Skips where no data generation is kept: PostgreSQL triggers keep it, and elsewhere no page or
    search is cached at all. A test marked `any_database` checks that, on any database."""
    from django.db import connection

    if request.node.get_closest_marker("any_database") is None:
        require_service(connection.vendor == "postgresql", "PostgreSQL, whose triggers keep the data generation")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("LESIONTRACK_REQUIRE_SERVICES") == "1" and report.skipped:
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if SERVICE_SKIP_TAG in reason:
            report.outcome = "failed"
            report.longrepr = f"skipped although LESIONTRACK_REQUIRE_SERVICES=1: {reason}"


_mutation_db_slot_locks: list[int] = []


def _mutation_db_slot() -> int:
    """A test database of its own for this process while mutmut runs mutants in parallel forks: the
    first free slot, held by a lock for the life of the process (a fork's lock goes when it exits)."""
    locks = Path(".mutation-db-slots")
    locks.mkdir(exist_ok=True)
    for slot in range(64):
        fd = os.open(locks / f"{slot}.lock", os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _mutation_db_slot_locks.append(fd)
        return slot
    raise RuntimeError("no free mutation test database slot")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    # mutmut (`make mutation`) sets MUTANT_UNDER_TEST and runs two forks at once: each gets its own
    # reused test database, so no test waits on, or deadlocks with, a parallel run's rows.
    if "MUTANT_UNDER_TEST" in os.environ:
        db = settings.DATABASES["default"]
        slot = _mutation_db_slot()
        if db["ENGINE"].endswith("sqlite3"):
            base = str(db.get("TEST", {}).get("NAME") or "test-db.sqlite3").split("-mut")[0].removesuffix(".sqlite3")
            db.setdefault("TEST", {})["NAME"] = f"{base}-mut{slot}.sqlite3"
        else:
            base = db["NAME"].removeprefix("test_").split("_mut")[0]
            db.setdefault("TEST", {})["NAME"] = f"test_{base}_mut{slot}"


@pytest.fixture(scope="session", autouse=True)
def litert_cache(tmp_path_factory):
    """One LiteRT model cache for the run (ml.tflite_runtime.cache_dir): the test process and the
    workers it starts convert the shipped models once, not at each start, and no run reads another's."""
    if "ML_CACHE_DIR" in os.environ:
        yield
        return
    os.environ["ML_CACHE_DIR"] = str(tmp_path_factory.mktemp("litert"))
    yield
    os.environ.pop("ML_CACHE_DIR", None)


@pytest.fixture(scope="session")
def media_root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("media"))


@pytest.fixture(autouse=True)
def private_media(settings, media_root):
    if settings.STORAGE_BACKEND == "local":
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                        "OPTIONS": {"location": media_root, "base_url": None}},
        }
        settings.MEDIA_ROOT = media_root
    return media_root


@pytest.fixture(autouse=True)
def empty_caches():
    """The fragment cache is per process: each test starts from an empty one."""
    from django.core.cache import caches

    for cache in caches.all():
        cache.clear()


@pytest.fixture(autouse=True)
def celery_app_stays_the_projects():
    """Every enqueue publishes through celery.current_app: a test that makes another Celery app
    the current one (Celery(...) does unless told set_as_current=False) would send every later
    test's jobs to that app's broker. Caught at the test that does it, not at a later victim."""
    yield
    from celery import current_app

    from config.celery import app

    left_another = current_app._get_current_object() is not app
    if left_another:
        app.set_current()  # so that only this test fails, not every later one
    assert not left_another, "this test left another Celery app as celery.current_app"


@pytest.fixture
def clinic():
    return ClinicFactory(name="Clinic A")


@pytest.fixture
def other_clinic():
    return ClinicFactory(name="Clinic B")


@pytest.fixture
def clinician(clinic):
    user = UserFactory(username="alice")
    MembershipFactory(user=user, clinic=clinic)
    return user


@pytest.fixture
def other_clinic_clinician(other_clinic):
    user = UserFactory(username="bob")
    MembershipFactory(user=user, clinic=other_clinic)
    return user


@pytest.fixture
def client_logged_in(clinician) -> Client:
    client = Client()
    client.force_login(clinician)
    return client


@pytest.fixture
def patient(clinic):
    return PatientFactory(clinic=clinic, name="Ada Example", identifier="MRN-A1")


@pytest.fixture
def lesion(patient):
    return LesionFactory(patient=patient, label="Left shoulder naevus")


@pytest.fixture
def other_patient(other_clinic):
    return PatientFactory(clinic=other_clinic, name="Bertha Other", identifier="MRN-B1")


@pytest.fixture
def other_lesion(other_patient):
    return LesionFactory(patient=other_patient, label="Other clinic lesion")


# The shared e2e worker's database sessions, as pg_stat_activity names them.
E2E_WORKER_APPLICATION_NAME = "lesiontrack-e2e-worker"


def worker_environment(media_root: str, *, application_name: str = "lesiontrack-test-worker") -> dict[str, str]:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("postgresql"):
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        url = (f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
               f"?application_name={application_name}")
    else:
        url = f"sqlite:///{db['NAME']}"
    return {"DATABASE_URL": url, "MEDIA_ROOT": media_root, "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, "ML_THREADS": "1"}


@pytest.fixture(scope="session")
def analysis_worker(django_db_setup, django_db_blocker, media_root, tmp_path_factory):
    """One real Celery worker process (solo pool) on the configured broker, shared by e2e tests."""
    if settings.STORAGE_BACKEND != "local":
        pytest.skip("the shared worker serves local storage; S3 tests start their own")
    with django_db_blocker.unblock():
        # A kept session outlives the session-long tests that look at it (test_pipeline_e2e).
        env = {**worker_environment(media_root, application_name=E2E_WORKER_APPLICATION_NAME), "CONN_MAX_AGE": "3600"}
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = start_worker(env=env, name="e2e", log_path=log, purge=True)
    yield proc
    stop_process(proc)


@pytest.fixture
def api_token(clinician, clinic) -> str:
    """A plaintext API token of clinic A acting as alice."""
    from clinic.services import api_token_create

    return api_token_create(request=None, created_by=None, clinic=clinic, user=clinician, name="Dermoscope 1").plaintext


@pytest.fixture
def api_client(api_token):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token}")
    return client
