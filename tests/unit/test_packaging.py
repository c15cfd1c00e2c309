"""The package as a wheel ships every module of ``tracking`` (and its static files), found by package
discovery rather than a hand-kept list."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "layers" / "shared" / "tracking"


def modules_in_source() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def clean_copy(target: Path) -> Path:
    """The sources a build reads, without what earlier builds left behind (``build/``, egg-info)."""
    skip = shutil.ignore_patterns("__pycache__", "node_modules", "build", "*.egg-info")
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    for name in ("layers", "devstack"):
        shutil.copytree(ROOT / name, target / name, ignore=skip)
    return target


def build_wheel(source: Path, out: Path) -> Path:
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*command, "-w", str(out), str(source)], check=True, capture_output=True)
    (wheel,) = out.glob("*.whl")
    return wheel


def test_the_wheel_holds_and_imports_every_module_of_the_package(tmp_path: Path) -> None:
    # Given a wheel built from a clean copy of the project, as `pip install .` builds it
    wheel = build_wheel(clean_copy(tmp_path / "source"), tmp_path)
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    assert (unpacked / "tracking" / "query" / "dashboard.html").is_file()
    assert (unpacked / "tracking" / "query" / "openapi.json").is_file()
    # When a fresh interpreter imports every module of the source tree, the wheel first on its path
    # (dependencies come from the environment)
    names = modules_in_source()
    code = (
        f"import importlib, sys\nsys.path.insert(0, {str(unpacked)!r})\n"
        f"for name in {names!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(unpacked)!r}), (name, module.__file__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    # Then each one is there, and is loaded from the wheel
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tracking.ingest.dialects.segment" in names
