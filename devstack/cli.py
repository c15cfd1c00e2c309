"""``tracking-local``: the local stack (``run``) and tools that read it (``events``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack import dynamodb
from devstack.template import ROOT, Template

DEFAULT_STATE_DIR = ROOT / ".local"
STATE_FILE = "stack.json"


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir or os.environ.get("LOCAL_STATE_DIR") or DEFAULT_STATE_DIR)


def admin_key(state_dir: Path) -> str:
    """``TRACKING_ADMIN_KEY``, else one generated once and kept in the state folder."""
    if os.environ.get("TRACKING_ADMIN_KEY"):
        return os.environ["TRACKING_ADMIN_KEY"]
    path = state_dir / "admin-key"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = "adm_" + secrets.token_urlsafe(24)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def cmd_run(args: argparse.Namespace) -> int:
    from devstack.apigw import ApiServer  # noqa: PLC0415
    from devstack.lambdas import ProcessPool, function_environment  # noqa: PLC0415
    from devstack.poller import StreamPoller  # noqa: PLC0415

    logging.basicConfig(
        level=os.environ.get("LOCAL_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    state_dir = _state_dir(args)
    state_dir.mkdir(parents=True, exist_ok=True)
    key = admin_key(state_dir)
    parameters = {"AdminKey": key, "StageName": "local"}
    if os.environ.get("RATE_LIMIT_PER_MINUTE"):
        parameters["RateLimitPerMinute"] = os.environ["RATE_LIMIT_PER_MINUTE"]
    template = Template.load(parameters)

    data_dir = None if args.in_memory else state_dir / "dynamodb"
    database = dynamodb.start(data_dir, args.dynamodb_port, log=state_dir / "dynamodb.log")
    stop = threading.Event()
    server: ApiServer | None = None
    pools: dict[str, ProcessPool] = {}
    try:
        dynamodb.ensure_tables(database, template)
        functions = template.functions()
        local = {
            **dynamodb.local_environment(database.endpoint),
            "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
        }
        pools = {
            name: ProcessPool(function, function_environment(function, local), args.concurrency)
            for name, function in functions.items()
        }
        warming = [threading.Thread(target=pool.warm, daemon=True) for pool in pools.values()]
        for thread in warming:
            thread.start()
        for thread in warming:
            thread.join()
        server = ApiServer((args.host, args.port), template.routes(), pools, stage="local")
        for mapping in template.stream_mappings():
            StreamPoller(
                database.client("dynamodbstreams"),
                database.client(),
                mapping,
                pools[mapping.function].invoke,
                state_dir=state_dir,
                stop=stop,
            ).start()
        url = f"http://{args.host}:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, name="api", daemon=True).start()
        (state_dir / STATE_FILE).write_text(
            json.dumps(
                {
                    "url": url,
                    "dynamodb": database.endpoint,
                    "database": database.kind,
                    "pid": os.getpid(),
                    "admin_key": key,
                }
            )
        )
        (state_dir / STATE_FILE).chmod(0o600)  # it holds the admin key
        _banner(url, key, database)

        def _stop(*_: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        while not stop.wait(0.5):
            pass
        print("\nStopping the local stack ...", file=sys.stderr)
    finally:
        stop.set()
        if server is not None:
            server.shutdown()
            server.server_close()
        for pool in pools.values():
            pool.stop()
        database.stop()
        (state_dir / STATE_FILE).unlink(missing_ok=True)
    return 0


def _banner(url: str, key: str, database: dynamodb.Database) -> None:
    storage = "DynamoDB Local" if database.kind == "dynamodb-local" else "moto (fallback)"
    print(
        f"""
Local event-tracking stack is up.
  API        {url}   (health: {url}/health)
  DynamoDB   {database.endpoint}   ({storage})
  Admin key  {key}   (x-api-key header; set TRACKING_ADMIN_KEY to choose it)

Try it:
  curl -s -X POST {url}/api/analytics/track -H 'Content-Type: application/json' \\
    -d '{{"event":"visitor","token":"user_abc123def456","data":{{"chatbot_id":"demo-bot"}}}}'
  make events     # list what was stored

Press Ctrl-C to stop.
""",
        flush=True,
    )


def _stack(state_dir: Path) -> dict[str, Any]:
    path = state_dir / STATE_FILE
    if not path.exists():
        raise SystemExit(f"No local stack is running (no {path}); start one with `make run`.")
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def cmd_events(args: argparse.Namespace) -> int:
    """Print the canonical events stored in the running stack's events table."""
    from tracking.models.canonical import CanonicalEvent  # noqa: PLC0415
    from tracking.storage.dynamo import from_item  # noqa: PLC0415
    from tracking.storage.events import event_from_values, is_event  # noqa: PLC0415

    state = _stack(_state_dir(args))
    client = dynamodb.Database(state["dynamodb"], state["database"]).client()
    events: list[CanonicalEvent] = []
    for page in client.get_paginator("scan").paginate(TableName="EventsTable"):
        values = (from_item(item) for item in page["Items"])
        events.extend(event_from_values(v) for v in values if is_event(v))  # not recorded rejections
    events = [e for e in events if (not args.plugin or e.plugin_id == args.plugin)]
    events.sort(key=lambda e: e.received_at)
    events = events[-args.limit :] if args.limit else events
    if args.json:
        for event in events:
            print(event.model_dump_json())
        return 0
    print(f"{'received (UTC)':<24} {'plugin':<18} {'user':<20} {'dialect':<8} {'key':<20} value / EUR")
    for e in events:
        when = datetime.fromtimestamp(e.received_at / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        shown = "" if e.value is None else str(e.value)
        if e.total_value_base is not None or e.items:
            shown += f" {e.total_value_base} EUR" if e.total_value_base is not None else " (unknown currency)"
        print(
            f"{when:<24} {e.plugin_id[:18]:<18} {e.user_id[:20]:<20} {e.dialect:<8} {e.key[:20]:<20} {shown}"
        )
    print(f"{len(events)} event(s)")
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    """What ``sam local invoke`` does, without Docker: one handler, one event, the function's
    environment and handler from template.yaml, against the running local stack's DynamoDB."""
    import contextlib  # noqa: PLC0415
    import traceback  # noqa: PLC0415

    from devstack.lambdas import LambdaContext, function_environment, load_handler  # noqa: PLC0415

    state_dir = _state_dir(args)
    stack = _stack(state_dir)
    template = Template.load({"AdminKey": stack["admin_key"], "StageName": "local"})
    functions = template.functions()
    if args.function not in functions:
        raise SystemExit(
            f"No function {args.function!r} in template.yaml; there are {', '.join(sorted(functions))}."
        )
    function = functions[args.function]
    text = sys.stdin.read() if args.event == "-" else Path(args.event).read_text(encoding="utf-8")
    event = json.loads(text)
    environment = function_environment(function, dynamodb.local_environment(stack["dynamodb"]))
    os.environ.clear()  # what the function sees, as in its container: nothing else
    os.environ.update(environment)
    # Like sam local invoke: the function's own output (its logs) on stderr, its result on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            handler = load_handler(function)
            result = handler(
                event, LambdaContext(function.logical_id, function.memory_mb, function.timeout_s)
            )
        except Exception:
            traceback.print_exc()
            return 1
    print(json.dumps(result, ensure_ascii=False, default=str))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Send the demo traffic to the running stack."""
    from devstack import demo  # noqa: PLC0415

    state_dir = _state_dir(args)
    stack = _stack(state_dir)
    client = demo.run(stack["url"], stack["admin_key"], seed=args.seed)
    print(f"Sent {client.sent} calls ({len(client.failed)} refused).")
    for failure in client.failed[:10]:
        print("  refused:", failure)
    print(
        f"Open {stack['url']}/dashboard with the admin key and pick {demo.PLUGIN} or {demo.CHATBOT}"
        " (aggregates appear within a second or two)."
    )
    return 1 if client.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tracking-local", description=__doc__)
    parser.add_argument("--state-dir", help="where data and the stack's address live (default .local/)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start DynamoDB Local, the API and stream processing")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    run.add_argument("--dynamodb-port", type=int, default=int(os.environ.get("DYNAMODB_PORT", "0")) or None)
    run.add_argument("--in-memory", action="store_true", help="keep no data on disk")
    run.add_argument("--concurrency", type=int, default=4, help="warm containers per function")
    run.set_defaults(func=cmd_run)

    events = sub.add_parser("events", help="list stored canonical events")
    events.add_argument("--plugin")
    events.add_argument("--limit", type=int, default=50)
    events.add_argument("--json", action="store_true", help="one canonical event per line, as JSON")
    events.set_defaults(func=cmd_events)

    invoke = sub.add_parser("invoke", help="run one function on one event (sam local invoke, without Docker)")
    invoke.add_argument("function", help="logical id in template.yaml, e.g. IngestFunction")
    invoke.add_argument("event", help="a JSON event file (events/*.json), or - for standard input")
    invoke.set_defaults(func=cmd_invoke)

    demo_parser = sub.add_parser("demo", help="send a realistic mix of traffic to the running stack")
    demo_parser.add_argument("--seed", type=int, default=7)
    demo_parser.set_defaults(func=cmd_demo)

    args = parser.parse_args(argv)
    started = time.monotonic()
    code: int = args.func(args)
    logging.getLogger("devstack").debug("done in %.1f s", time.monotonic() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
