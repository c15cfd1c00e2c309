"""Least privilege, checked on template.yaml (``python -m devstack.checks.policies``; make deploy-check and
tests/unit/test_policies.py run it).

Every identity statement that allows a write must name resources of this stack: a ``Ref`` or
``GetAtt`` of one of its resources (or of a parameter naming one, like ``KmsKeyArn``), or a ``Sub``
built on one, with no wildcard but the objects of one of its buckets (``${Bucket.Arn}/prefix*``).
Reads may use ``*`` only where AWS offers nothing narrower (list actions). Functions must take a
role of this template: a SAM-generated one carries AWSLambdaBasicExecutionRole, whose log writes
cover every log group of the account. AWS-managed policies are refused except where listed below
with the reason.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from devstack.local.template import load_template

# Verbs of actions that change nothing.
READ_VERBS = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "Head")

# AWS-managed policies allowed, per role, and why.
MANAGED_POLICY_EXCEPTIONS = {
    # The account's API Gateway CloudWatch role (created only with ConfigureApiGatewayAccount=true) is
    # one per account and region and serves every API there: scoped to this stack's log group, it
    # would break the access logs of the account's other APIs.
    "ApiGatewayCloudWatchRole": "AmazonAPIGatewayPushToCloudWatchLogs",
}


def is_write(action: str) -> bool:
    verb = action.split(":", 1)[-1]
    return not verb.startswith(READ_VERBS)


def _names(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _branches(value: Any) -> Iterator[Any]:
    """The values a resource may take: both sides of an ``Fn::If``."""
    if isinstance(value, Mapping) and "Fn::If" in value:
        _, yes, no = value["Fn::If"]
        yield from _branches(yes)
        yield from _branches(no)
    elif isinstance(value, list):
        for item in value:
            yield from _branches(item)
    else:
        yield value


def _own(resource: Any, document: Mapping[str, Any]) -> bool:
    """A resource named through one of the template's own resources (or parameters), no wildcard."""
    resources = document.get("Resources", {})
    parameters = document.get("Parameters", {})
    if not isinstance(resource, Mapping) or len(resource) != 1:
        return False
    ((function, argument),) = resource.items()
    if function == "Ref":
        return argument in resources or argument in parameters
    if function == "Fn::GetAtt":
        name = argument[0] if isinstance(argument, list) else str(argument).split(".")[0]
        return name in resources
    if function == "Fn::Sub":
        text = argument if isinstance(argument, str) else argument[0]
        named = {match.split(".")[0] for match in re.findall(r"\$\{([^}!]+)\}", text)}
        return ("*" not in text or _objects_of_own_bucket(text, resources)) and bool(named & set(resources))
    return False


def _objects_of_own_bucket(text: str, resources: Mapping[str, Any]) -> bool:
    """``${Bucket.Arn}/prefix*``: objects of one of this stack's buckets (S3 names no object otherwise)."""
    found = re.fullmatch(r"\$\{(\w+)\.Arn\}/[^*$]*\*", text)
    return found is not None and resources.get(found.group(1), {}).get("Type") == "AWS::S3::Bucket"


def _statements(document: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, statement) for every identity statement of the template."""
    for name, resource in document.get("Resources", {}).items():
        props = resource.get("Properties", {})
        kind = resource.get("Type")
        if kind == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for statement in _branches(policy["PolicyDocument"].get("Statement", [])):
                    if isinstance(statement, Mapping):
                        yield f"{name}/{policy.get('PolicyName')}", dict(statement)
        elif kind == "AWS::Serverless::Function":
            for policy in props.get("Policies", []):
                if isinstance(policy, Mapping):  # inline statements; named SAM templates are refused above
                    for statement in _branches(policy.get("Statement", [])):
                        if isinstance(statement, Mapping):
                            yield name, dict(statement)
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for statement in _branches(props["PolicyDocument"].get("Statement", [])):
                if isinstance(statement, Mapping):
                    yield name, dict(statement)


def findings(document: Mapping[str, Any]) -> list[str]:
    """What breaks least privilege in ``document``; empty when nothing does."""
    found = []
    for name, resource in document.get("Resources", {}).items():
        props = resource.get("Properties", {})
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function":
            if "Role" not in props:
                found.append(f"{name}: no Role of this template (SAM's would allow logs on every group)")
            if "Policies" in props:
                found.append(f"{name}: Policies on the function (SAM adds them to a generated role)")
        if kind == "AWS::IAM::Role":
            allowed = MANAGED_POLICY_EXCEPTIONS.get(name)
            for arn in _names(props.get("ManagedPolicyArns", [])):
                if allowed is None or allowed not in arn:
                    found.append(f"{name}: AWS-managed policy {arn}")
    for where, statement in _statements(document):
        if statement.get("Effect") != "Allow":
            continue
        actions = _names(statement.get("Action", []))
        resources = list(_branches(statement.get("Resource", [])))
        for action in actions:
            if "*" in action:
                found.append(f"{where}: wildcard action {action}")
        writes = [action for action in actions if is_write(action)]
        for resource in resources:
            if resource == {"Ref": "AWS::NoValue"}:
                continue
            if writes and not _own(resource, document):
                found.append(f"{where}: {', '.join(writes)} on {resource!r}, not a resource of this stack")
            elif not writes and isinstance(resource, str) and resource != "*" and "*" in resource:
                found.append(f"{where}: {', '.join(actions)} on a partial wildcard {resource!r}")
    return found


def main() -> int:
    problems = findings(load_template())
    for problem in problems:
        print(f"least privilege: {problem}", file=sys.stderr)
    if not problems:
        print("least privilege: every write names a resource of this stack")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
