"""What ``sam deploy --guided`` will ask, read from template.yaml and samconfig.toml, so an operator
can prepare the answers before running it (``make deploy-check`` prints it; no AWS account needed)."""

from __future__ import annotations

import sys
import textwrap
import tomllib
from collections.abc import Mapping
from typing import Any

from devstack.local.template import ROOT, load_template


def _guided_defaults() -> Mapping[str, Any]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    default = config.get("default", {})
    return {
        **default.get("global", {}).get("parameters", {}),
        **default.get("deploy", {}).get("parameters", {}),
    }


def _unauthenticated(document: Mapping[str, Any]) -> list[str]:
    """Functions with API events and no gateway authorizer: SAM asks to confirm each one."""
    names = []
    for name, resource in document.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        events = resource.get("Properties", {}).get("Events", {}).values()
        if any(
            event.get("Type") == "Api" and not event.get("Properties", {}).get("Auth") for event in events
        ):
            names.append(name)
    return names


def prompts(document: Mapping[str, Any]) -> list[str]:
    defaults = _guided_defaults()
    lines = [
        f"Stack Name [{defaults.get('stack_name', 'sam-app')}]",
        "AWS Region [your profile's region]",
    ]
    for name, spec in document.get("Parameters", {}).items():
        default = spec.get("Default", "")
        line = f"Parameter {name} [{default}]"
        if "AllowedValues" in spec:
            line += f"  (one of {', '.join(str(v) for v in spec['AllowedValues'])})"
        description = " ".join(str(spec.get("Description", "")).split())
        lines.append(line)
        if description:
            lines.extend(textwrap.wrap(description, 96, initial_indent="    ", subsequent_indent="    "))
    lines += [
        f"Confirm changes before deploy [{'Y' if defaults.get('confirm_changeset') else 'N'}]",
        "Allow SAM CLI IAM role creation [Y]  (the stack creates one role per function: CAPABILITY_IAM)",
        "Disable rollback [N]",
    ]
    for function in _unauthenticated(document):
        lines.append(
            f"{function} has no authentication. Is this okay? [y/N]  -> y: "
            + (
                "its routes check x-api-key themselves (admin secret, dashboard key hashes)"
                if function == "QueryFunction"
                else "ingest is public by contract (origin checks, size limits, per-IP limits)"
            )
        )
    lines += [
        "Save arguments to configuration file [Y]",
        "SAM configuration file [samconfig.toml]",
        "SAM configuration environment [default]",
        "",
        "After the deploy: the admin key is in the secret named by the AdminKeySecretArn output:",
        "  aws secretsmanager get-secret-value --secret-id <AdminKeySecretArn> \\",
        "      --query SecretString --output text",
    ]
    return lines


def main() -> int:
    print("sam deploy --guided will ask (defaults in brackets):")
    for line in prompts(load_template()):
        print(f"  {line}" if line else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
