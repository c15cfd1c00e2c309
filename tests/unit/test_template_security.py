"""The deployed stack's secrets and encryption: no secret in its environment variables, parameters or
outputs (the admin key lives in a Secrets Manager secret the template generates, and functions are
given its ARN only), and an alarm topic encrypted with a key CloudWatch may use."""

from __future__ import annotations

import json
from typing import Any

from devstack.local.template import load_template

DOCUMENT = load_template()


def _mentions(value: Any, needle: str) -> bool:
    return needle in json.dumps(value)


def test_no_parameter_carries_a_secret() -> None:
    parameters = DOCUMENT["Parameters"]
    assert not [name for name, spec in parameters.items() if spec.get("NoEcho")]
    # The admin key is no longer a parameter (it stayed in the stack's history): only a KMS key's ARN
    # and limits per key are.
    assert {name for name in parameters if "key" in name.lower()} == {
        "KmsKeyArn",
        "KeyQuotaPerDay",
        "WafRateLimitPerWriteKey",
        "WriteKeyRatePerMinute",
    }
    assert all(
        parameters[name]["Type"] == "Number"
        for name in parameters
        if "PerWriteKey" in name or "WriteKeyRate" in name
    )


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


def test_alarms_can_publish_to_their_encrypted_topic() -> None:
    # Not alias/aws/sns: its key policy (which nobody can edit) does not let CloudWatch use it, and
    # alarms would fail to publish. Without KmsKeyArn the stack's own key lets CloudWatch use it.
    resources = DOCUMENT["Resources"]
    topic = resources["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {
        "Fn::If": ["HasKmsKey", {"Ref": "KmsKeyArn"}, {"Ref": "AlarmTopicKey"}]
    }
    key = resources["AlarmTopicKey"]
    assert key["Condition"] == "NoKmsKey"
    (cloudwatch,) = [
        statement
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert not _mentions(DOCUMENT, "alias/aws/sns")
