"""Cold start as deployed: each function started in a fresh Python 3.13 interpreter of a Lambda-like
layout of what ``sam build`` ships (``devstack/local/lambdalayout.py``), importing its handler and serving
one request against DynamoDB Local; over the floor measured the same way (boto3 from the runtime's
precompiled install, a DynamoDB client and one ``put_item``). CPU time of the interpreter from its
first line to the answer: what Lambda bills as init plus the first invocation, minus the interpreter's
own start, which both sides pay alike. Both sides alternate in every round; medians and spread."""

from __future__ import annotations

import json
import statistics
from typing import Any

from devstack.bench.harness import ADMIN_KEY, TEMPLATE, Function, environment_of
from devstack.bench.stats import spread
from devstack.local import dynamodb
from devstack.local.lambdalayout import COMPILE_PROBE, LambdaLayout, python313
from devstack.local.template import ROOT

FUNCTIONS = {"ingest": "IngestFunction", "aggregate": "AggregateFunction", "query": "QueryFunction"}
EVENTS = {
    "ingest": ROOT / "events" / "widget-track.json",
    "aggregate": ROOT / "events" / "aggregate-stream.json",
    "query": ROOT / "events" / "columns-get.json",
}
SAMPLE_ADMIN_KEY = "local-admin-key-for-sample-events-0001"  # what the sample events carry

_CONTEXT = """
class Context:
    function_name = "bench"; function_version = "$LATEST"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"; log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"
    def get_remaining_time_in_millis(self): return 10000
"""

HANDLER_CODE = (
    "import time\n_started = time.process_time()\n"
    + COMPILE_PROBE
    + _CONTEXT
    + """
import io, json, sys, contextlib
event = json.load(open(sys.argv[1]))
with contextlib.redirect_stdout(io.StringIO()):
    import app
    answer = app.lambda_handler(event, Context())
status = answer.get("statusCode", 200) if isinstance(answer, dict) else 200
failures = answer.get("batchItemFailures", []) if isinstance(answer, dict) else []
print(json.dumps({"cpu": time.process_time() - _started, "status": status, "failures": len(failures),
                  "compiled": [p for p in _compiled if "/opt/" in p or "/tasks/" in p]}))
"""
)

FLOOR_CODE = (
    "import time\n_started = time.process_time()\n"
    + COMPILE_PROBE
    + """
import json, boto3
client = boto3.client("dynamodb")
client.put_item(TableName="ControlTable", Item={"pk": {"S": "bench"}, "sk": {"S": "floor"}})
print(json.dumps({"cpu": time.process_time() - _started, "status": 200, "failures": 0,
                  "compiled": [p for p in _compiled if "/runtime/" in p]}))
"""
)


def cold_start_deployed(database: dynamodb.Database, rounds: int) -> dict[str, Any]:
    python = python313()
    if python is None:
        return {"skipped": "no python3.13 (install it, or pyenv install 3.13)"}
    # The query sample reads demo-plugin's columns: publish its config first, as an admin would.
    with environment_of("QueryFunction", database):
        put = json.loads((ROOT / "events" / "config-put.json").read_text())
        put["headers"]["x-api-key"] = ADMIN_KEY
        put["multiValueHeaders"]["x-api-key"] = [ADMIN_KEY]
        assert Function("QueryFunction")(put)["statusCode"] == 200
    functions = TEMPLATE.functions()
    local = {
        **dynamodb.local_environment(database.endpoint),
        "TRACKING_ADMIN_KEY": SAMPLE_ADMIN_KEY,
    }
    with LambdaLayout.scratch(python, {name: functions[name] for name in FUNCTIONS.values()}) as layout:
        samples: dict[str, list[dict[str, Any]]] = {key: [] for key in ["floor", *FUNCTIONS]}
        for _ in range(rounds):
            samples["floor"].append(layout.run(FLOOR_CODE, "IngestFunction", local))
            for key, function in FUNCTIONS.items():
                environment = {**functions[function].environment, **local}
                samples[key].append(layout.run(HANDLER_CODE, function, environment, str(EVENTS[key])))
        breakdown = _breakdown(layout, functions, local, 3 if rounds < 7 else 5)
    return {**_summary(samples, rounds, python), "import_ms": breakdown}


def _breakdown(
    layout: LambdaLayout, functions: dict[str, Any], local: dict[str, str], runs: int
) -> dict[str, dict[str, float]]:
    """Where each cold start's import time goes, per package (median ms of ``runs`` runs, the 12
    largest), next to the floor's ``import boto3`` (its client and put are not imports)."""
    codes = {
        "floor": ("IngestFunction", "import boto3"),
        **{key: (name, "import app") for key, name in FUNCTIONS.items()},
    }
    result = {}
    for key, (function, code) in codes.items():
        environment = {**functions[function].environment, **local} if key != "floor" else local
        samples = [layout.import_times(code, function, environment) for _ in range(runs)]
        groups = {name for sample in samples for name in sample}
        medians = {name: statistics.median(sample.get(name, 0.0) for sample in samples) for name in groups}
        top = sorted(medians.items(), key=lambda item: -item[1])[:12]
        result[key] = {"total": round(sum(medians.values()), 1), **{name: round(ms, 1) for name, ms in top}}
    return result


def _summary(samples: dict[str, list[dict[str, Any]]], rounds: int, python: str) -> dict[str, Any]:
    floor = [run["cpu"] for run in samples["floor"]]
    result: dict[str, Any] = {
        "rounds": rounds,
        "python": python,
        "floor_ms": spread([value * 1000 for value in floor]),
        "floor_compiled": sorted({path for run in samples["floor"] for path in run["compiled"]}),
    }
    for key in FUNCTIONS:
        runs = samples[key]
        assert all(run["status"] < 500 and run["failures"] == 0 for run in runs), (key, runs[0])
        cpu = [run["cpu"] for run in runs]
        # A ratio per round (each function against the floor of its own round), then their spread.
        ratios = [run["cpu"] / base for run, base in zip(runs, floor, strict=True)]
        result[key] = {
            "ms": spread([value * 1000 for value in cpu]),
            "ratio": spread(ratios, 3),
            "status": runs[0]["status"],
            "compiled": sorted({path for run in runs for path in run["compiled"]}),
        }
    return result
