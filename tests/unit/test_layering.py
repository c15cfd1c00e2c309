"""The package's layering, read from its imports: storage at the bottom, only the composition root
(and the stream adapter's decoder) above it knows storage or AWS exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "layers" / "shared" / "tracking"
AWS = ("boto3", "botocore", "tracking.storage")
# Those allowed to reach storage: the composition root builds the stores; the stream adapters and the
# reader of the Kinesis change records (the lake's and the destinations') decode the events table's
# item formats (an event, recorded rejections, a deletion step) from each record.
MAY_REACH_STORAGE = {"wiring.py", "aggregate/stream.py", "forget/stream.py", "changes.py"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules() -> dict[str, set[str]]:
    return {str(path.relative_to(PACKAGE)): imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_nothing_outside_storage_imports_aws_or_storage() -> None:
    offenders = {
        name: sorted(i for i in names if i.startswith(AWS))
        for name, names in modules().items()
        if not name.startswith("storage/") and name not in MAY_REACH_STORAGE
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_storage_raises_domain_failures_never_contract_errors() -> None:
    offenders = {
        name: sorted(
            i
            for i in names
            if i in ("tracking.api_errors", "tracking.http") or i.startswith("tracking.query")
        )
        for name, names in modules().items()
        if name.startswith("storage/")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_storage_and_models_import_no_stage() -> None:
    stages = ("tracking.ingest", "tracking.aggregate", "tracking.query")
    offenders = {
        name: sorted(i for i in names if i.startswith(stages))
        for name, names in modules().items()
        if name.startswith(("storage/", "models/"))
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_stream_adapters_use_storage_only_to_decode() -> None:
    decoders = {"tracking.storage.events", "tracking.storage.rejections"}  # events, recorded rejections
    assert {i for i in modules()["aggregate/stream.py"] if i.startswith(AWS)} == decoders
    steps = {"tracking.storage.deletions"}  # a deletion step (its kind is in tracking.keys)
    assert {i for i in modules()["forget/stream.py"] if i.startswith(AWS)} == steps
    images = {"tracking.storage.events", "tracking.storage.dynamo"}  # an event from a change's image
    assert {i for i in modules()["changes.py"] if i.startswith(AWS)} == images


def test_every_key_layout_is_built_in_one_module() -> None:
    # The separator that joins the parts of a key appears in tracking/keys.py and nowhere else (gzip's
    # magic number starts with the same byte: it is not a key).
    separator = re.compile(r"\\x1f(?!\\x8b)|\\u001f(?!\\u007f)|␟")
    holders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if separator.search(path.read_text(encoding="utf-8"))
    ]
    assert holders == ["keys.py"]


MODULE_MAX_LINES = 400  # a package module past this holds more than one thing (issue 22)
TOOL_MAX_LINES = 450  # likewise for the local stack, the checks, the tools and the bench


def test_no_module_outgrows_its_room() -> None:
    package = {str(p.relative_to(ROOT)): p for p in PACKAGE.rglob("*.py")}
    tools = {
        str(p.relative_to(ROOT)): p
        for p in (ROOT / "devstack").rglob("*.py")
        if "node_modules" not in p.parts
    }
    too_long = {
        name: lines
        for group, most in ((package, MODULE_MAX_LINES), (tools, TOOL_MAX_LINES))
        for name, path in group.items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > most
    }
    assert too_long == {}


def test_the_readme_is_a_front_door_whose_map_names_every_module() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    mapped = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    named: set[str] = set()
    for entry in mapped:  # `ingest/dialects/{widget,plugin,segment}.py` names three
        if match := re.fullmatch(r"(.*)\{(.+)\}(\.py)", entry):
            named.update(f"{match[1]}{part}{match[3]}" for part in match[2].split(","))
        else:
            named.add(entry)
    modules_ = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    assert modules_ - named == set()
    for document in ("docs/API.md", "docs/DESIGN.md", "docs/DEPLOY.md"):
        assert (ROOT / document).is_file()
        assert f"({document})" in readme
