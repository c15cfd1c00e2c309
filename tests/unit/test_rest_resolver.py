"""The HTTP functions load Powertools' REST resolver without the package's other resolvers (AppSync,
Bedrock, ... and asyncio with them), and the package still answers for everything it defines."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json, sys
import tracking.http
loaded = {name: name in sys.modules for name in (
    "aws_lambda_powertools.event_handler.api_gateway",
    "aws_lambda_powertools.event_handler.appsync",
    "aws_lambda_powertools.event_handler.bedrock_agent",
    "asyncio",
)}
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler import AppSyncResolver  # not a REST name: the real __init__ runs
from aws_lambda_powertools.event_handler.api_gateway import APIGatewayRestResolver as Rest
same = APIGatewayRestResolver is Rest
print(json.dumps({"loaded": loaded, "same": same, "appsync": AppSyncResolver.__name__,
                  "content_types": content_types.APPLICATION_JSON}))
"""


def run_probe() -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "layers" / "shared"), "PATH": "/usr/bin:/bin"},
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_http_module_loads_the_rest_resolver_only_and_the_package_still_answers() -> None:
    result = run_probe()
    assert result["loaded"] == {
        "aws_lambda_powertools.event_handler.api_gateway": True,
        "aws_lambda_powertools.event_handler.appsync": False,
        "aws_lambda_powertools.event_handler.bedrock_agent": False,
        "asyncio": False,
    }
    assert result["same"] is True
    assert result["appsync"] == "AppSyncResolver"
    assert result["content_types"] == "application/json"
