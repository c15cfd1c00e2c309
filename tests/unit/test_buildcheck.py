"""The check of what `sam build` produced fails on a layer built for the wrong platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.checks.buildcheck import problems
from devstack.local.template import Template

SO = "_pydantic_core.cpython-313-aarch64-linux-gnu.so"


def write_pyc(source: Path, flags: int) -> None:
    """A .pyc header of Python 3.13 (magic, then the flags word), as compileall writes one."""
    cache = source.parent / "__pycache__"
    cache.mkdir(exist_ok=True)
    magic = (3571).to_bytes(2, "little") + b"\r\n"
    (cache / f"{source.stem}.cpython-313.pyc").write_bytes(magic + flags.to_bytes(4, "little") + bytes(8))


def fake_build(
    root: Path, native: str = SO, runtime: str = "python3.13", architecture: str = "arm64"
) -> Path:
    layer = root / "SharedLayer" / "python"
    for part in ("tracking/query", "tracking/sdk", "pydantic", "aws_lambda_powertools", "pydantic_core"):
        (layer / part).mkdir(parents=True, exist_ok=True)
    for part in (
        "tracking/__init__.py",
        "tracking/query/dashboard.html",
        "tracking/sdk/tracking.js",
        "tracking/query/openapi.json",
        f"pydantic_core/{native}",
    ):
        (layer / part).write_text("")
    for source in layer.rglob("*.py"):
        write_pyc(source, flags=0b01)
    for name in Template.load().functions():
        (root / name).mkdir()
        (root / name / "app.py").write_text("")
    (root / "template.yaml").write_text(
        f"Globals:\n  Function:\n    Runtime: {runtime}\n    Architectures: [{architecture}]\n"
    )
    return root


def test_a_good_build_passes(tmp_path: Path) -> None:
    assert problems(fake_build(tmp_path)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"native": "_pydantic_core.cpython-313-x86_64-linux-gnu.so"}, "pydantic_core is not built"),
        ({"native": "_pydantic_core.cpython-312-aarch64-linux-gnu.so"}, "pydantic_core is not built"),
        ({"architecture": "x86_64"}, "not python3.13 on arm64"),
        ({"runtime": "python3.12"}, "not python3.13 on arm64"),
    ],
)
def test_a_build_for_another_platform_fails(tmp_path: Path, change: dict[str, str], expected: str) -> None:
    assert any(expected in problem for problem in problems(fake_build(tmp_path, **change)))


def test_a_layer_without_the_package_fails(tmp_path: Path) -> None:
    build = fake_build(tmp_path)
    (build / "SharedLayer" / "python" / "tracking" / "query" / "dashboard.html").unlink()
    assert problems(build) == ["layer lacks tracking/query/dashboard.html"]


def test_a_layer_without_bytecode_or_with_timestamped_bytecode_fails(tmp_path: Path) -> None:
    build = fake_build(tmp_path)
    layer = build / "SharedLayer" / "python"
    (layer / "tracking" / "query" / "cells.py").write_text("")  # no .pyc beside it
    write_pyc(layer / "tracking" / "__init__.py", flags=0)  # timestamp-checked: stale once zipped by SAM
    found = problems(build)
    assert any("1 modules without python3.13 bytecode" in problem for problem in found), found
    assert any("not unchecked-hash" in problem for problem in found), found
