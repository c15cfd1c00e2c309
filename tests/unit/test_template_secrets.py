"""No secret in the deployed stack's environment variables, parameters or outputs: the admin key lives
in a Secrets Manager secret the template generates, and functions are given its ARN only."""

from __future__ import annotations

import json
from typing import Any

from devstack.template import load_template

DOCUMENT = load_template()


def _mentions(value: Any, needle: str) -> bool:
    return needle in json.dumps(value)


def test_no_parameter_carries_a_secret() -> None:
    parameters = DOCUMENT["Parameters"]
    assert not [name for name, spec in parameters.items() if spec.get("NoEcho")]
    # The admin key is no longer a parameter (it stayed in the stack's history): only a KMS key's ARN
    # and the keys' quota are.
    assert {name for name in parameters if "key" in name.lower()} == {"KmsKeyArn", "KeyQuotaPerDay"}


def test_functions_get_the_secrets_arn_never_its_value() -> None:
    for name, resource in DOCUMENT["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        variables = resource["Properties"].get("Environment", {}).get("Variables", {})
        assert "TRACKING_ADMIN_KEY" not in variables, name
        assert not _mentions(variables, "resolve:secretsmanager"), name
        assert not _mentions(variables, "resolve:ssm-secure"), name
    query = DOCUMENT["Resources"]["QueryFunction"]["Properties"]["Environment"]["Variables"]
    assert query["ADMIN_KEY_SECRET_ARN"] == {"Ref": "AdminKeySecret"}


def test_the_secret_is_generated_and_no_output_reveals_it() -> None:
    secret = DOCUMENT["Resources"]["AdminKeySecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert "SecretString" not in secret["Properties"]
    assert secret["Properties"]["GenerateSecretString"]["ExcludePunctuation"] is True
    for name, output in DOCUMENT["Outputs"].items():
        assert not _mentions(output["Value"], "resolve:"), name
        assert not _mentions(output["Value"], "SecretString"), name
