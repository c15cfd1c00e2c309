"""The browser SDK (layers/shared/tracking/sdk): its own tests under Node's test runner, its types
under TypeScript (what a plugin's TypeScript build sees), and its size as served, gzipped."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "layers" / "shared" / "tracking" / "sdk"
TSC = ROOT / "devstack" / "node_modules" / ".bin" / "tsc"
# The contract: under 4 KB gzipped as served.
GZIPPED_MAX = 4096


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_the_sdk_passes_its_own_tests_under_node() -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed (make deps installs DynamoDB Local with npm)"
    done = run(node, "--test", "tests/sdk/")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
    assert "# pass 10" in done.stdout


def test_a_plugins_typescript_sees_the_call_and_its_mistakes() -> None:
    if not TSC.exists():
        pytest.fail("TypeScript is not installed: make deps (npm ci --prefix devstack)")
    done = run(str(TSC), "-p", "tests/sdk")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_sdk_is_under_4_kb_gzipped_and_has_no_imports() -> None:
    script = (SDK / "tracking.js").read_bytes()
    assert len(gzip.compress(script, compresslevel=6)) < GZIPPED_MAX
    assert b"\nimport " not in script
    assert b"require(" not in script
