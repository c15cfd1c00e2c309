"""``tracking-local``: the local stack (``run``) and tools that read it (``events``, ``sql``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import select
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.local import dynamodb
from devstack.local.template import ROOT, Template

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
    logging.basicConfig(
        level=os.environ.get("LOCAL_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    state_dir = _state_dir(args)
    state_dir.mkdir(parents=True, exist_ok=True)
    key = admin_key(state_dir)
    parameters = {"StageName": "local"}
    if os.environ.get("RATE_LIMIT_PER_MINUTE"):
        parameters["RateLimitPerMinute"] = os.environ["RATE_LIMIT_PER_MINUTE"]
    stack = LocalStack(state_dir, Template.load(parameters), key)
    signal.signal(signal.SIGTERM, stack.signalled)
    signal.signal(signal.SIGINT, stack.signalled)
    # The kernel gives a process's signal to any of its threads; pause() in the main thread would then
    # never return. Python writes every signal to the wakeup fd whichever thread takes it, so the main
    # thread waits on that instead, and runs the handler as soon as it wakes.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    try:
        if stack.start(args) and stack.database is not None:
            _banner(stack.url, key, stack.database)
            while not stack.stop.is_set():
                select.select([wake_read], [], [])
                os.read(wake_read, 512)
            print("\nStopping the local stack ...", file=sys.stderr)
    finally:
        stack.shut_down()
    return 0


STOP_SECONDS = 8  # everything the stack started ends within this (and DynamoDB Local's own 1-2 s)


class LocalStack:
    """What ``tracking-local run`` starts, and how it ends: the first Ctrl-C or SIGTERM stops it in
    order (the API answers 503 meanwhile); a second one ends it at once."""

    def __init__(self, state_dir: Path, template: Template, key: str) -> None:
        self.state_dir = state_dir
        self.template = template
        self.key = key
        self.stop = threading.Event()
        self.server: Any = None
        self.pools: dict[str, Any] = {}
        self.database: dynamodb.Database | None = None
        self.queues: Any = None
        self.url = ""

    def signalled(self, *_: Any) -> None:
        if self.stop.is_set():
            if self.database is not None:
                self.database.kill()
            os._exit(1)
        self.stop.set()
        if self.server is not None:
            self.server.stopping = True

    def start(self, args: argparse.Namespace) -> bool:
        """Start everything; False if asked to stop meanwhile."""
        from devstack.local.apigw import ApiServer  # noqa: PLC0415
        from devstack.local.esm import start_queue_pollers  # noqa: PLC0415
        from devstack.local.kinesis import kinesis_invoke  # noqa: PLC0415
        from devstack.local.lake import LAKE_FUNCTION, start_lake  # noqa: PLC0415
        from devstack.local.lambdas import ProcessPool, function_environment  # noqa: PLC0415
        from devstack.local.poller import StreamPoller  # noqa: PLC0415
        from devstack.local.queues import queue_environment, start_queues  # noqa: PLC0415

        data_dir = None if args.in_memory else self.state_dir / "dynamodb"
        database = self.database = dynamodb.start(
            data_dir, args.dynamodb_port, log=self.state_dir / "dynamodb.log"
        )
        dynamodb.ensure_tables(database, self.template)
        _migrate_local(database)
        # SQS: the template's queues, durable beside the tables (devstack/local/queues.py).
        self.queues = start_queues(self.template, self.state_dir / "queues.sqlite", fresh=args.in_memory)
        local = {
            **queue_environment(self.queues),
            # Destinations at http://127.0.0.1:<port> are allowed here, never deployed.
            "DESTINATIONS_ALLOW_LOCAL": "true",
            **dynamodb.local_environment(database.endpoint),
            # On AWS the admin key is a Secrets Manager secret; locally it is given as is.
            "TRACKING_ADMIN_KEY": self.key,
            # The query function's lake: the files the local Firehose writes (DuckDB reads them).
            "LAKE_DIR": str(self.state_dir / "lake"),
            "LAKE_FLUSH_SECONDS": os.environ.get("LAKE_FLUSH_SECONDS", "5"),
            "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
        }
        self.pools = {
            name: ProcessPool(function, function_environment(function, local), args.concurrency)
            for name, function in self.template.functions().items()
        }
        warming = [threading.Thread(target=pool.warm, daemon=True) for pool in self.pools.values()]
        for thread in warming:
            thread.start()
        for thread in warming:
            thread.join()
        if self.stop.is_set():
            return False
        self.server = ApiServer(
            (args.host, args.port),
            self.template.routes(),
            self.pools,
            stage="local",
            minimum_compression=self.template.minimum_compression(),
        )
        for mapping in self.template.stream_mappings():
            StreamPoller(
                database.client("dynamodbstreams"),
                database.client(),
                mapping,
                kinesis_invoke(self.pools[mapping.function].invoke)
                if mapping.kinesis
                else self.pools[mapping.function].invoke,
                state_dir=self.state_dir,
                stop=self.stop,
                shards=args.stream_shards,
            ).start()
        start_lake(
            database.client("dynamodbstreams"),
            database.client(),
            self.pools[LAKE_FUNCTION].invoke,
            lake_dir=self.state_dir / "lake",
            state_dir=self.state_dir,
            stop=self.stop,
            flush_seconds=float(local["LAKE_FLUSH_SECONDS"]),
        )
        invokers = {name: pool.invoke for name, pool in self.pools.items()}
        start_queue_pollers(self.queues, self.template, invokers, self.stop, args.concurrency)
        self.url = f"http://{args.host}:{self.server.server_address[1]}"
        state = {
            "url": self.url,
            "dynamodb": database.endpoint,
            "database": database.kind,
            "queues": self.queues.endpoint,
            "pid": os.getpid(),
            "admin_key": self.key,
        }
        # Written before /health answers: whoever sees the stack healthy reads this run's ports,
        # never those a crashed run left behind. Created 0600 (it holds the admin key) and renamed
        # into place, so no reader sees half a file.
        written = self.state_dir / f".{STATE_FILE}.{os.getpid()}"
        descriptor = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(json.dumps(state))
        os.replace(written, self.state_dir / STATE_FILE)
        threading.Thread(target=self.server.serve_forever, name="api", daemon=True).start()
        return True

    def shut_down(self) -> None:
        """The API answers 503 while the pollers, the function containers and DynamoDB Local end."""
        self.stop.set()
        deadline = time.monotonic() + STOP_SECONDS
        if self.server is not None:
            self.server.stopping = True
        stoppers = [threading.Thread(target=pool.stop, args=(deadline,)) for pool in self.pools.values()]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + 2)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.queues is not None:
            self.queues.shutdown()
            self.queues.server_close()
            self.queues.queues.close()
        if self.database is not None:
            self.database.stop()
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)


def _migrate_local(database: dynamodb.Database) -> None:
    """Data an earlier version left in the local tables, in today's key layout (before anything runs)."""
    from devstack.tools.migrate_keys import migrate  # noqa: PLC0415

    moved = migrate(database.client(), "AggregatesTable")
    if moved.moved or moved.conflicts:
        print(f"Moved {moved.moved} aggregates items to the suffixed key layout.", flush=True)


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

    from devstack.local.lambdas import LambdaContext, function_environment, load_handler  # noqa: PLC0415

    state_dir = _state_dir(args)
    stack = _stack(state_dir)
    template = Template.load({"StageName": "local"})
    functions = template.functions()
    if args.function not in functions:
        raise SystemExit(
            f"No function {args.function!r} in template.yaml; there are {', '.join(sorted(functions))}."
        )
    function = functions[args.function]
    text = sys.stdin.read() if args.event == "-" else Path(args.event).read_text(encoding="utf-8")
    event = json.loads(text)
    local = {
        **dynamodb.local_environment(stack["dynamodb"]),
        "TRACKING_ADMIN_KEY": stack["admin_key"],
        "LAKE_DIR": str(state_dir / "lake"),  # the running stack's lake, as its functions read it
        "AWS_ENDPOINT_URL_SQS": stack["queues"],  # and its queues
        "DELIVERY_QUEUE_URL": f"{stack['queues']}/000000000000/DeliveryQueue",
        "REPLAY_QUEUE_URL": f"{stack['queues']}/000000000000/ReplayQueue",
        "DESTINATIONS_ALLOW_LOCAL": "true",
    }
    environment = function_environment(function, local)
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


def cmd_migrate_keys(args: argparse.Namespace) -> int:
    """Move a deployed aggregates table to the suffixed key layout (docs/DEPLOY.md, "Upgrading")."""
    import boto3  # noqa: PLC0415

    from devstack.tools.migrate_keys import migrate  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.table:
        client = boto3.client("dynamodb", region_name=args.region, endpoint_url=args.endpoint_url)
        table = args.table
    else:
        stack = _stack(_state_dir(args))
        client, table = dynamodb.Database(stack["dynamodb"], stack["database"]).client(), "AggregatesTable"
    done = migrate(client, table, args.segments)
    print(f"{done.scanned} items scanned, {done.moved} moved, {done.already} already copied.")
    for pk, sk in done.conflicts:
        print(f"  left in place (a new-layout item differs; was the aggregator paused?): {pk!r} {sk!r}")
    return 1 if done.conflicts else 0


def cmd_sql(args: argparse.Namespace) -> int:
    """One SQL statement over the local lake (the view ``events``), its answer tab-separated."""
    from devstack.local.lake_sql import run_sql  # noqa: PLC0415

    names, rows = run_sql(_state_dir(args) / "lake", args.statement)
    print("\t".join(names))
    for row in rows:
        print("\t".join("" if value is None else str(value) for value in row))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Send the demo traffic to the running stack."""
    from devstack.tools import demo  # noqa: PLC0415

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
    run.add_argument(
        "--stream-shards",
        type=int,
        default=int(os.environ.get("LOCAL_STREAM_SHARDS", "1")),
        help="stream shards to emulate (DynamoDB Local has one; AWS one per partition)",
    )
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

    sql = sub.add_parser("sql", help="run SQL over the local lake (a view `events`), as Athena does deployed")
    sql.add_argument("statement", help='e.g. "SELECT name, count(*) FROM events GROUP BY name"')
    sql.set_defaults(func=cmd_sql)

    demo_parser = sub.add_parser("demo", help="send a realistic mix of traffic to the running stack")
    demo_parser.add_argument("--seed", type=int, default=7)
    demo_parser.set_defaults(func=cmd_demo)

    migrate = sub.add_parser(
        "migrate-keys", help="move an aggregates table to the suffixed key layout (once, on upgrade)"
    )
    migrate.add_argument("--table", help="a deployed AggregatesTable's name (default: the local stack's)")
    migrate.add_argument("--region")
    migrate.add_argument("--endpoint-url")
    migrate.add_argument("--segments", type=int, default=8, help="parts of the table moved at once")
    migrate.set_defaults(func=cmd_migrate_keys)

    args = parser.parse_args(argv)
    started = time.monotonic()
    code: int = args.func(args)
    logging.getLogger("devstack").debug("done in %.1f s", time.monotonic() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
