"""Fixtures shared by all suites."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"


@pytest.fixture(scope="session")
def psacheck_binary() -> str:
    """The restricted-PSS checker built from k8s.io/pod-security-admission (tests/psa)."""
    binary = CACHE / "bin" / "psacheck"
    if not binary.exists():
        go = shutil.which("go")
        if go is None:
            pytest.fail("Go is needed to build tests/psa (the Pod Security admission checker): install Go >= 1.24")
        subprocess.run([go, "build", "-o", str(binary), "."], cwd=ROOT / "tests" / "psa", check=True)
    return str(binary)


@pytest.fixture(scope="session")
def psacheck(psacheck_binary):
    def check(pods: dict[str, dict]) -> dict[str, str]:
        out = subprocess.run([psacheck_binary], input=json.dumps(pods), capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    return check
