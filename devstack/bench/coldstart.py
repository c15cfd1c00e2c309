"""Cold start: CPU time to import and initialise each handler module in a fresh interpreter, over the
CPU time of the floor every Python function pays (``import boto3`` plus a DynamoDB client)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from typing import Any

from devstack.bench.harness import TEMPLATE
from devstack.bench.stats import spread
from devstack.local import dynamodb
from devstack.local.lambdas import function_environment
from devstack.local.template import ROOT

FLOOR_CODE = (
    "import time;t=time.process_time();import boto3;boto3.client('dynamodb');print(time.process_time()-t)"
)


def _handler_code(function: str) -> str:
    path = TEMPLATE.functions()[function].code_dir / "app.py"
    return (
        "import time,importlib.util;t=time.process_time();"
        f"s=importlib.util.spec_from_file_location('app',{str(path)!r});m=importlib.util.module_from_spec(s);"
        "s.loader.exec_module(m);print(time.process_time()-t)"
    )


def cold_start(runs: int) -> dict[str, Any]:
    """CPU time to import and initialise each handler module in a fresh interpreter, over the CPU
    time of ``import boto3`` plus a DynamoDB client; runs interleaved, medians compared."""
    local = dynamodb.local_environment("http://127.0.0.1:9")  # never contacted at import
    names = {"ingest": "IngestFunction", "aggregate": "AggregateFunction", "query": "QueryFunction"}
    samples: dict[str, list[float]] = {key: [] for key in ["floor", *names]}
    layer = str(ROOT / "layers" / "shared")
    for _ in range(runs):
        for key in ["floor", *names]:
            if key == "floor":
                env, code = {**os.environ, **local}, FLOOR_CODE
            else:
                function = TEMPLATE.functions()[names[key]]
                env, code = function_environment(function, local), _handler_code(names[key])
            env["PYTHONPATH"] = layer
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
            )
            samples[key].append(float(done.stdout))
    floor = statistics.median(samples["floor"])
    result: dict[str, Any] = {"floor_ms": round(floor * 1000, 1), "runs": runs}
    for key in names:
        median = statistics.median(samples[key])
        result[f"{key}_ms"] = round(median * 1000, 1)
        # Each run against the floor of its own round; the figure is the median of those ratios.
        ratios = spread([run / base for run, base in zip(samples[key], samples["floor"], strict=True)], 3)
        result[key] = ratios["median"]
        result[f"{key}_spread"] = ratios
    return result
