"""The README's curl session for integrators runs as written against a live server and a real worker."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest

from clinic.models import AuditEvent, Patient
from clinic.services import api_token_create
from lesions.models import Analysis, Capture, Histopathology
from tests.conftest import SERVICE_SKIP_TAG
from tests.factories import lesion_image

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

README = Path(__file__).resolve().parents[1] / "README.md"


def integrator_examples() -> str:
    block = re.search(r"<!-- integrator-examples:start -->\n```sh\n(.*?)```\n<!-- integrator-examples:end -->",
                      README.read_text(), re.S)
    assert block, "README lost its integrator examples"
    return block.group(1)


def test_the_readme_curl_session_works(analysis_worker, live_server, clinician, clinic, tmp_path):
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip(f"{SERVICE_SKIP_TAG} needs {tool} (make test installs it)")
    token = api_token_create(request=None, created_by=None, clinic=clinic, user=clinician, name="README")
    (tmp_path / "lesion.jpg").write_bytes(lesion_image((320, 240), radius=70))
    script = integrator_examples()
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=240, env={"PATH": "/usr/bin:/bin", "LESIONTRACK_URL": live_server.url,
                                              "LESIONTRACK_TOKEN": token.plaintext})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    patient = Patient.objects.get(identifier="MRN-1001", clinic=clinic)
    capture = Capture.objects.get(lesion__patient=patient)
    assert capture.device == "DermLite DL4" and capture.mm_per_pixel == 0.02
    assert capture.analyses.get().status == Analysis.Status.DONE
    assert '"status": "done"' in result.stdout and '"melanoma_probability"' in result.stdout
    assert Histopathology.objects.get(lesion=capture.lesion).breslow_mm is not None
    assert "MRN-1001" in result.stdout
    assert pydicom.dcmread(tmp_path / "capture.dcm").PatientID == "MRN-1001"
    assert pydicom.dcmread(tmp_path / "overlay.dcm").ImageType[0] == "DERIVED"
    assert AuditEvent.objects.filter(action="download", detail__api_token=token.token.prefix).count() == 2
