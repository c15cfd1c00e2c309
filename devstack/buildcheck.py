"""Checks what ``sam build`` produced: the layer for arm64 and the python3.13 runtime, with the
tracking package and its static files; a handler per function."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from devstack.template import ROOT, Template

BUILD = ROOT / ".aws-sam" / "build"


def problems(build: Path = BUILD) -> list[str]:
    found: list[str] = []
    layer = build / "SharedLayer" / "python"
    for part in (
        "tracking/__init__.py",
        "tracking/query/dashboard.html",
        "tracking/query/openapi.json",
        "pydantic",
        "aws_lambda_powertools",
    ):
        if not (layer / part).exists():
            found.append(f"layer lacks {part}")
    native = sorted(layer.glob("pydantic_core/_pydantic_core*.so"))
    if not native or not all("cpython-313-aarch64-linux-gnu" in path.name for path in native):
        found.append(f"pydantic_core is not built for python3.13 on arm64: {[p.name for p in native]}")
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


def main() -> int:
    found = problems()
    for problem in found:
        print(f"sam build check: {problem}", file=sys.stderr)
    if not found:
        print("sam build check: arm64 layer for python3.13 with the tracking package; all handlers present")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
