"""Least privilege in template.yaml: no write action on a resource that is not this stack's."""

from __future__ import annotations

from typing import Any

from devstack.checks.policies import findings, is_write
from devstack.local.template import load_template


def test_every_write_in_the_template_names_a_resource_of_this_stack() -> None:
    assert findings(load_template()) == []


# What QueryFunction could delete in the first release: every API key of the region.
APIKEYS = "arn:${AWS::Partition}:apigateway:${AWS::Region}::/apikeys/*"


def _role(*statements: dict[str, Any], managed: list[str] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": list(statements)}}]
    }
    if managed:
        props["ManagedPolicyArns"] = managed
    return {"Type": "AWS::IAM::Role", "Properties": props}


def test_the_check_refuses_what_the_first_release_shipped() -> None:
    document = {
        "Parameters": {"KmsKeyArn": {}},
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table"},
            "Group": {"Type": "AWS::Logs::LogGroup"},
            "Bucket": {"Type": "AWS::S3::Bucket"},
            # A function with SAM's generated role and inline policies.
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Policies": [
                        {
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": ["apigateway:DELETE"],
                                    "Resource": {"Fn::Sub": APIKEYS},
                                }
                            ]
                        }
                    ]
                },
            },
            "Good": _role(
                {
                    "Effect": "Allow",
                    "Action": ["dynamodb:PutItem"],
                    "Resource": {"Fn::GetAtt": ["Table", "Arn"]},
                },
                {"Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource": {"Fn::GetAtt": "Group.Arn"}},
                {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": {"Ref": "KmsKeyArn"}},
                {"Effect": "Allow", "Action": ["dynamodb:ListStreams"], "Resource": "*"},
                {"Effect": "Deny", "Action": ["s3:PutObject"], "Resource": "*"},
                # the objects of one of its buckets
                {
                    "Effect": "Allow",
                    "Action": ["s3:PutObject"],
                    "Resource": {"Fn::Sub": "${Bucket.Arn}/events/*"},
                },
            ),
            "Bad": _role(
                {"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"},
                {"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": {"Fn::GetAtt": ["Table", "Arn"]}},
                {
                    "Effect": "Allow",
                    "Action": ["sqs:SendMessage"],
                    "Resource": {"Fn::If": ["C", {"Fn::GetAtt": ["Table", "Arn"]}, "arn:aws:sqs:*:*:*"]},
                },
                {
                    "Effect": "Allow",
                    "Action": ["dynamodb:GetItem"],
                    "Resource": "arn:aws:dynamodb:*:*:table/x*",
                },
                # a wildcard after a resource that is not a bucket, or a bucket named by a parameter
                {
                    "Effect": "Allow",
                    "Action": ["dynamodb:PutItem"],
                    "Resource": {"Fn::Sub": "${Table.Arn}/*"},
                },
                {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": {"Fn::Sub": "${KmsKeyArn}/*"}},
                managed=["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
            ),
        },
    }
    found = findings(document)
    assert not [line for line in found if line.startswith("Good")]
    assert set(found) == {
        "Fn: no Role of this template (SAM's would allow logs on every group)",
        "Fn: Policies on the function (SAM adds them to a generated role)",
        "Fn: apigateway:DELETE on {'Fn::Sub': 'arn:${AWS::Partition}:apigateway:${AWS::Region}::/apikeys/*'},"
        " not a resource of this stack",
        "Bad: AWS-managed policy arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "Bad/p: logs:PutLogEvents on '*', not a resource of this stack",
        "Bad/p: wildcard action dynamodb:*",
        "Bad/p: sqs:SendMessage on 'arn:aws:sqs:*:*:*', not a resource of this stack",
        "Bad/p: dynamodb:GetItem on a partial wildcard 'arn:aws:dynamodb:*:*:table/x*'",
        "Bad/p: dynamodb:PutItem on {'Fn::Sub': '${Table.Arn}/*'}, not a resource of this stack",
        "Bad/p: s3:PutObject on {'Fn::Sub': '${KmsKeyArn}/*'}, not a resource of this stack",
    }


def test_reads_and_writes_are_told_apart_by_the_actions_verb() -> None:
    assert not is_write("dynamodb:BatchGetItem")
    assert not is_write("dynamodb:Query")
    assert not is_write("secretsmanager:GetSecretValue")
    assert is_write("dynamodb:BatchWriteItem")
    assert is_write("kms:Decrypt")
    assert is_write("apigateway:DELETE")
