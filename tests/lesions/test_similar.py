"""Similar confirmed cases: nearest by embedding, same clinic and model version, confirmed only."""

from __future__ import annotations

import numpy as np
import pytest

from lesions import services, similar
from lesions.analysis import embedding_bytes
from lesions.models import Analysis, Histopathology
from tests.factories import LesionFactory, PatientFactory, lesion_image

pytestmark = pytest.mark.django_db

DIM = 16


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def analysed_capture(lesion, vector: np.ndarray, *, model_version: str | None = None):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    fields = {"status": Analysis.Status.DONE, "probability": 0.1, "threshold": 0.2,
              "embedding": embedding_bytes(vector)}
    if model_version:
        fields["model_version"] = model_version
    Analysis.objects.filter(capture=capture).update(**fields)
    return capture


@pytest.fixture(autouse=True)
def fresh_indexes():
    similar.forget_indexes()
    yield
    similar.forget_indexes()


@pytest.fixture
def clinic_cases(clinic, other_clinic, lesion):
    patient = PatientFactory(clinic=clinic)
    query = analysed_capture(lesion, unit(1, 0))
    analysed_capture(lesion, unit(1, 0.01))  # the same lesion: never its own match
    melanoma = LesionFactory(patient=patient, label="Excised melanoma")
    Histopathology.objects.create(lesion=melanoma, breslow_mm="0.80")
    near = analysed_capture(melanoma, unit(1, 0.2))
    naevus = LesionFactory(patient=patient, label="Benign naevus", clinical_diagnosis="Benign compound naevus")
    far = analysed_capture(naevus, unit(1, 1))
    unconfirmed = LesionFactory(patient=patient, label="Not yet diagnosed")
    analysed_capture(unconfirmed, unit(1, 0.05))
    elsewhere = LesionFactory(patient=PatientFactory(clinic=other_clinic), clinical_diagnosis="Melanoma")
    analysed_capture(elsewhere, unit(1, 0))
    old_model = LesionFactory(patient=patient, clinical_diagnosis="Seborrhoeic keratosis")
    analysed_capture(old_model, unit(1, 0), model_version="seg-old+cls-old")
    return {"query": query, "near": near, "far": far}


def test_nearest_confirmed_cases_of_the_same_clinic_and_model_version(clinic_cases):
    found = similar.similar_confirmed_cases(clinic_cases["query"])
    assert [case.capture_id for case in found] == [clinic_cases["near"].pk, clinic_cases["far"].pk]
    assert found[0].diagnosis == "Melanoma (Breslow 0.80 mm)" and found[0].confirmed_by == "histopathology"
    assert found[1].diagnosis == "Benign compound naevus" and found[1].confirmed_by == "clinician"
    assert found[0].similarity == pytest.approx(float(unit(1, 0) @ unit(1, 0.2)), abs=1e-6)


def test_a_withdrawn_diagnosis_does_not_show_even_from_a_cached_index(clinic_cases):
    assert len(similar.similar_confirmed_cases(clinic_cases["query"])) == 2
    clinic_cases["far"].lesion.__class__.objects.filter(pk=clinic_cases["far"].lesion_id).update(clinical_diagnosis="")
    assert [c.capture_id for c in similar.similar_confirmed_cases(clinic_cases["query"])] == [clinic_cases["near"].pk]


def test_the_case_page_shows_them_with_their_diagnosis(client_logged_in, clinic_cases):
    page = client_logged_in.get(f"/lesions/{clinic_cases['query'].lesion_id}/").content.decode()
    assert "Similar confirmed cases in this clinic" in page and "not a diagnosis" in page
    assert page.index("Melanoma (Breslow 0.80 mm)") < page.index("Benign compound naevus")
    assert "Seborrhoeic keratosis" not in page and "Not yet diagnosed" not in page


def test_no_section_before_an_analysis_has_an_embedding(client_logged_in, lesion):
    services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    assert "Similar confirmed cases" not in client_logged_in.get(f"/lesions/{lesion.pk}/").content.decode()


def test_the_index_search_is_exact():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(500, DIM)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = similar.ClinicIndex(np.arange(500), np.arange(500) // 5, matrix)
    query = matrix[42]
    hits = index.search(query, k=4, exclude_lesion=42 // 5)
    expected = [i for i in np.argsort(-(matrix @ query)) if i // 5 != 42 // 5][:4]
    assert [row for row, _ in hits] == expected


def test_the_benchmark_script_writes_its_json(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "similar.json"
    subprocess.run([sys.executable, "bench/similar_search.py", "--captures", "2000", "--queries", "20",
                    "--dims", "32", "--out", str(out)], check=True, capture_output=True, timeout=120)
    run = json.loads(out.read_text())["runs"][0]
    assert run["captures"] == 2000 and run["dim"] == 32 and run["search_ms"]["count"] == 20


@pytest.mark.django_db(transaction=True)
def test_a_stale_index_answers_while_it_is_rebuilt(settings, clinic):
    import time

    patient = PatientFactory(clinic=clinic)
    confirmed = LesionFactory(patient=patient, clinical_diagnosis="Dermatofibroma")
    first = analysed_capture(confirmed, unit(1, 0))
    version = Analysis.objects.get(capture=first).model_version
    index = similar.index_for(clinic.pk, version)
    assert list(index.capture_ids) == [first.pk]
    second = analysed_capture(LesionFactory(patient=patient, clinical_diagnosis="Lentigo"), unit(0, 1))
    settings.SIMILAR_INDEX_MAX_AGE_S = 0
    assert similar.index_for(clinic.pk, version) is index  # the stale one answers at once
    deadline = time.monotonic() + 20
    while sorted(similar.index_for(clinic.pk, version).capture_ids) != sorted([first.pk, second.pk]):
        assert time.monotonic() < deadline, "the index was not rebuilt"
        time.sleep(0.05)
