"""What Lambda runs, laid out on this machine: the layer ``sam build`` makes (its own Makefile,
``layers/shared/Makefile``, built for this machine's platform since its arm64 twin cannot load
here), zipped as SAM zips it (every file dated 1980) and unzipped as Lambda unpacks it into ``opt/``;
a function's code in ``var/task``; boto3 precompiled in ``var/runtime`` as the runtime ships it.
Everything is read-only and Python writes no bytecode, as on Lambda, so a module whose ``.pyc`` does
not validate is compiled again on every start, and is seen to be.

Used by the cold-start benchmark (``devstack/bench/deployed.py``) and ``make build-check``
(``devstack/checks/buildcheck.py``)."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import stat
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack.local.template import ROOT, Function

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
LAYER_SOURCE = ROOT / "layers" / "shared"
HOST_PLATFORM = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}.get(
    platform.machine(), "manylinux2014_x86_64"
)


def python313() -> str | None:
    """A Python 3.13 interpreter's real path (not a pyenv shim): on PATH, or pyenv's."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [
        shutil.which("python3.13"),
        *sorted(pyenv_root.glob("versions/3.13*/bin/python3.13"), reverse=True),
    ]
    for candidate in candidates:
        if candidate is not None and (found := _executable_if_313(str(candidate))):
            return found
    return None


def _executable_if_313(python: str) -> str | None:
    done = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2] == (3, 13), sys.executable)"],
        capture_output=True,
        text=True,
        check=False,
    )
    is_313, _, executable = done.stdout.strip().partition(" ")
    return executable if done.returncode == 0 and is_313 == "True" else None


def boto3_version() -> str:
    pins = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'"boto3==([^"]+)"', pins)
    assert match, "boto3 is pinned in pyproject.toml"
    return match.group(1)


def zip_as_sam(source: Path, archive: Path) -> None:
    """Every file under ``source``, each dated 1980 (what SAM's packaging writes)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(source)), date_time=ZIP_DATE)
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                zipped.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)


def unzip_as_lambda(archive: Path, destination: Path) -> None:
    """Unpack keeping each file's date from the archive, as Lambda's unpacking does."""
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            target = destination / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zipped.read(info))
            when = time.mktime((*info.date_time, 0, 0, -1))
            os.utime(target, (when, when))


def build_layer(artifacts: Path, python: str, platform_tag: str = HOST_PLATFORM) -> None:
    """The layer, by the Makefile ``sam build`` runs (into ``artifacts``/python)."""
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(LAYER_SOURCE),
            "build-SharedLayer",
            f"ARTIFACTS_DIR={artifacts}",
            f"PLATFORM={platform_tag}",
            f"PYTHON={python}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )


def install_runtime(runtime: Path, python: str) -> None:
    """boto3 as the python3.13 runtime ships it: installed, with its bytecode."""
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(runtime),
            f"boto3=={boto3_version()}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )


def _read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def make_writable(root: Path) -> None:
    """So that a layout can be removed."""
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


class LambdaLayout:
    """``root``/opt (the layer), ``root``/var/runtime (boto3), ``root``/tasks/<function> (its code)."""

    def __init__(self, root: Path, python: str) -> None:
        self.root = root
        self.python = python
        self.opt = root / "opt"
        self.runtime = root / "var" / "runtime"

    @classmethod
    @contextmanager
    def scratch(cls, python: str, functions: Mapping[str, Function]) -> Iterator[LambdaLayout]:
        """A layout built in a temporary folder, removed afterwards (it is read-only meanwhile)."""
        with tempfile.TemporaryDirectory() as folder:
            try:
                yield cls.build(Path(folder), python, functions)
            finally:
                make_writable(Path(folder))

    @classmethod
    def build(cls, root: Path, python: str, functions: Mapping[str, Function]) -> LambdaLayout:
        layout = cls(root, python)
        staging = root / "staging"
        build_layer(staging / "layer", python)
        zip_as_sam(staging / "layer", staging / "layer.zip")
        unzip_as_lambda(staging / "layer.zip", layout.opt)
        for name, function in functions.items():
            code = staging / f"{name}.zip"
            zip_as_sam(function.code_dir, code)
            unzip_as_lambda(code, layout.task(name))
        install_runtime(layout.runtime, python)
        shutil.rmtree(staging)
        _read_only(root)
        return layout

    def task(self, function: str) -> Path:
        return self.root / "tasks" / function

    def environment(self, function: str, extra: Mapping[str, str]) -> dict[str, str]:
        """What the runtime gives a function: its search path (task root, layer, runtime) and no
        bytecode writing (Lambda's file system is read-only), then ``extra``."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LAMBDA_TASK_ROOT": str(self.task(function)),
            "PYTHONPATH": os.pathsep.join(
                [str(self.task(function)), str(self.opt / "python"), str(self.runtime)]
            ),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            **extra,
        }

    def run(self, code: str, function: str, extra: Mapping[str, str], *args: str) -> dict[str, Any]:
        """Run ``code`` (which prints one JSON object last) in a fresh interpreter of this layout."""
        stdout, _ = self._python(function, extra, "-c", code, *args)
        result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
        return result

    def import_times(self, code: str, function: str, extra: Mapping[str, str]) -> dict[str, float]:
        """Milliseconds of ``python -X importtime`` self time per importing package while ``code``
        runs (the handler module's own top-level work counts under its name, ``app``)."""
        _, stderr = self._python(function, extra, "-X", "importtime", "-c", code)
        totals: dict[str, float] = {}
        for line in stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
            if match:
                name = match.group(2)
                group = ".".join(name.split(".")[:2]) if name.startswith("tracking.") else name.split(".")[0]
                totals[group] = totals.get(group, 0.0) + int(match.group(1)) / 1000
        return totals

    def _python(self, function: str, extra: Mapping[str, str], *argv: str) -> tuple[str, str]:
        """A fresh interpreter of this layout, as ``function``'s runtime starts one: its output."""
        done = subprocess.run(
            [self.python, "-s", *argv],
            capture_output=True,
            text=True,
            env=self.environment(function, extra),
            cwd=self.task(function),
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{function}: {done.stderr[-3000:]}")
        return done.stdout, done.stderr


# Counts every module compiled from source while the code runs (a .pyc that did not validate).
COMPILE_PROBE = """
import importlib._bootstrap_external as _external
_compiled = []
_source_to_code = _external.SourceLoader.source_to_code
def _counting(self, data, path, *args, **kwargs):
    _compiled.append(str(path))
    return _source_to_code(self, data, path, *args, **kwargs)
_external.SourceLoader.source_to_code = _counting
"""
