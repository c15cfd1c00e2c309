"""Checks what ``sam build`` produced: the layer for arm64 and the python3.13 runtime, with the
tracking package and its static files, and bytecode Lambda will use (for every module, a .pyc of
Python 3.13 in unchecked-hash mode, valid whatever the files' dates); a handler per function.

``main`` also proves the bytecode is used: the same layer, built for this machine by the same
Makefile and unpacked as Lambda unpacks it (``devstack/local/lambdalayout.py``), imports every handler
without compiling one of the layer's modules."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from devstack.local.template import ROOT, Template

BUILD = ROOT / ".aws-sam" / "build"


def problems(build: Path = BUILD) -> list[str]:
    found: list[str] = []
    layer = build / "SharedLayer" / "python"
    for part in (
        "tracking/__init__.py",
        "tracking/query/dashboard.html",
        "tracking/query/openapi.json",
        "tracking/sdk/tracking.js",
        "pydantic",
        "aws_lambda_powertools",
    ):
        if not (layer / part).exists():
            found.append(f"layer lacks {part}")
    native = sorted(layer.glob("pydantic_core/_pydantic_core*.so"))
    if not native or not all("cpython-313-aarch64-linux-gnu" in path.name for path in native):
        found.append(f"pydantic_core is not built for python3.13 on arm64: {[p.name for p in native]}")
    found += bytecode_problems(layer)
    for name, function in Template.load().functions().items():
        if not (build / name / f"{function.module}.py").exists():
            found.append(f"{name} has no {function.module}.py")
    built = yaml.load((build / "template.yaml").read_text(), Loader=yaml.BaseLoader)  # noqa: S506 - plain data
    runtime = built["Globals"]["Function"]
    if runtime.get("Runtime") != "python3.13" or runtime.get("Architectures") != ["arm64"]:
        found.append(
            f"functions are not python3.13 on arm64: {runtime.get('Runtime')} {runtime.get('Architectures')}"
        )
    return found


# A .pyc's flags word: bit 0 hash-based, bit 1 check the source. Unchecked hash: 0b01.
UNCHECKED_HASH = 0b01


def bytecode_problems(layer: Path) -> list[str]:
    """Every module of the layer needs its Python 3.13 bytecode, in unchecked-hash mode."""
    missing, timestamped = [], []
    for source in sorted(layer.rglob("*.py")):
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if not compiled.exists():
            missing.append(str(source.relative_to(layer)))
            continue
        with compiled.open("rb") as handle:
            header = handle.read(8)
        if int.from_bytes(header[4:8], "little") != UNCHECKED_HASH:
            timestamped.append(str(source.relative_to(layer)))
    found = []
    if missing:
        found.append(f"{len(missing)} modules without python3.13 bytecode, e.g. {missing[:3]}")
    if timestamped:
        found.append(
            f"{len(timestamped)} .pyc files are not unchecked-hash (never valid on Lambda): {timestamped[:3]}"
        )
    return found


def compiled_at_start() -> dict[str, list[str]]:
    """Per function, the layer's modules compiled when its handler is imported in a Lambda-like
    layout of a layer built by the same Makefile for this machine (empty: the bytecode is used)."""
    from devstack.local.lambdalayout import COMPILE_PROBE, LambdaLayout, python313  # noqa: PLC0415

    python = python313()
    assert python is not None
    functions = Template.load().functions()
    code = COMPILE_PROBE + "import app, json; print(json.dumps({'compiled': _compiled}))"
    environment = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    with LambdaLayout.scratch(python, functions) as layout:
        return {
            name: [
                path
                for path in layout.run(code, name, {**function.environment, **environment})["compiled"]
                if str(layout.opt) in path
            ]
            for name, function in functions.items()
        }


def main() -> int:
    found = problems()
    if not found:
        for function, compiled in compiled_at_start().items():
            if compiled:
                found.append(
                    f"{function} compiled {len(compiled)} of the layer's modules at start: {compiled[:3]}"
                )
    for problem in found:
        print(f"sam build check: {problem}", file=sys.stderr)
    if not found:
        print(
            "sam build check: arm64 layer for python3.13 with the tracking package and unchecked-hash"
            " bytecode for every module, used as deployed (no layer module compiled at start);"
            " all handlers present"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
