"""`make deploy-check` prints what `sam deploy --guided` will ask: every parameter of the template with
its default, and a confirmation for each function whose API routes have no gateway authorizer."""

from __future__ import annotations

from devstack.checks.deployprompts import prompts
from devstack.local.template import load_template


def test_every_parameter_is_listed_with_its_default() -> None:
    document = load_template()
    lines = prompts(document)
    for name, spec in document["Parameters"].items():
        assert f"Parameter {name} [{spec.get('Default', '')}]" in "\n".join(lines), name
    assert lines[0] == "Stack Name [event-tracking]"  # samconfig.toml's


def test_functions_that_check_keys_themselves_are_confirmed() -> None:
    asked = [line for line in prompts(load_template()) if "has no authentication" in line]
    assert [line.split()[0] for line in asked] == ["IngestFunction", "QueryFunction"]
