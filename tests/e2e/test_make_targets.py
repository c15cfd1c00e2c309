"""What the Makefile promises: a check it cannot run is reported as skipped, never passed silently."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def test_without_python_3_13_the_sam_build_check_says_it_is_skipped() -> None:
    if not (ROOT / ".venv-sam" / ".installed").exists():
        pytest.skip("the SAM virtualenv is made by `make lint`, which `make test` runs first")
    if shutil.which("python3.13", path="/usr/bin:/bin"):
        pytest.skip("this system has python3.13 in /usr/bin: the check runs rather than skips")
    make = shutil.which("make")
    assert make is not None
    done = subprocess.run(
        [make, "--no-print-directory", "build-check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "SKIPPED: sam build check: no python3.13 on PATH" in done.stdout


def test_make_invoke_explains_itself_without_arguments() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "invoke"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "usage: make invoke FN=IngestFunction EVENT=events/widget-track.json" in done.stdout
