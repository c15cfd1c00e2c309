"""The engines that answer SQL over the lake: Athena on AWS (the stack's workgroup and Glue database),
DuckDB on one machine (the local stack's ``.local/lake/``). Both take a statement with ``?``
parameters (``tracking.lake.questions``) and answer rows, or, for a query still running when the wait
is over, its id; both read the view ``events`` that shows each event once.

Athena runs the statement with execution parameters (each a SQL literal: strings quoted, so a value
is never SQL) in the workgroup, whose bytes-scanned limit bounds what one question costs. The plugin
is the first parameter of every statement: a query id is answered only to a caller of that plugin.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from tracking.lake.questions import Dialect, Listing, ListingPage, Statement
from tracking.lake.schema import COLUMNS, DUCKDB_TYPES, PARTITIONS, lake_partition
from tracking.models.storage_failures import LakeQueryFailed, StorageUnavailable
from tracking.storage.dynamo import error_code

Rows = list[tuple[Any, ...]]
POLL_FIRST_S = 0.2
POLL_MAX_S = 2.0
RESULT_PAGE = 1000

# Athena's (Trino's) names for what DuckDB calls otherwise, so that one statement runs in both.
ATHENA_FUNCTIONS = (
    "CREATE OR REPLACE MACRO json_extract_scalar(document, path) AS json_extract_string(document, path)",
)


def events_view(lake_dir: Path) -> str:
    """The statement creating DuckDB's view ``events`` over the lake's files: the lake's columns, its
    partitions from the path, each event once (a delivery's repeats removed by ``event_id``); an empty
    view before any file."""
    files = sorted((lake_dir / "events").glob("plugin_id=*/day=*/*.parquet"))
    if not files:
        columns = ", ".join(
            f"CAST(NULL AS {DUCKDB_TYPES[kind]}) AS {name}" for name, kind in (*COLUMNS, *PARTITIONS)
        )
        return f"CREATE OR REPLACE VIEW events AS SELECT {columns} WHERE false"
    pattern = str(lake_dir / "events" / "*" / "*" / "*.parquet").replace("'", "''")
    hive = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name, _ in PARTITIONS) + "}"
    return (
        "CREATE OR REPLACE VIEW events AS SELECT * EXCLUDE (delivered) FROM ("  # noqa: S608
        "SELECT *, row_number() OVER (PARTITION BY plugin_id, event_id ORDER BY received_at) AS delivered "
        f"FROM read_parquet('{pattern}', hive_partitioning = true, hive_types = {hive}, "
        "union_by_name = true)) WHERE delivered = 1"
    )


def duckdb_connect() -> Any:
    """A DuckDB connection in memory that prints nothing of its own (no progress bar in a log)."""
    import duckdb  # noqa: PLC0415 - only where the lake is local: no deployed function imports it

    connection = duckdb.connect()
    connection.execute("SET enable_progress_bar = false")
    return connection


def duckdb_connection(lake_dir: Path) -> Any:
    """A DuckDB connection (in memory) with the view ``events`` over the lake, and Athena's names."""
    connection = duckdb_connect()
    connection.execute(events_view(lake_dir))
    for statement in ATHENA_FUNCTIONS:
        connection.execute(statement)
    return connection


class DuckDbLake:
    """The local lake: every question answered at once."""

    dialect: Dialect = "duckdb"
    immediate = True

    def __init__(self, lake_dir: Path) -> None:
        self._lake = lake_dir

    def run(self, statement: Statement, wait_s: float) -> Rows | str:
        del wait_s
        connection = duckdb_connection(self._lake)
        try:
            rows: Rows = connection.execute(statement.sql, list(statement.parameters)).fetchall()
        except Exception as exc:  # DuckDB's own errors: the files unreadable, not the caller's input
            raise LakeQueryFailed(f"The lake could not be read: {exc}") from exc
        finally:
            connection.close()
        return rows

    def fetch(self, query_id: str, plugin_id: str) -> Rows | str | None:
        return None  # nothing is ever left running

    def listing_page(
        self, listing: Listing, plugin_id: str, position: str | None, limit: int
    ) -> ListingPage | None:
        """A page of ``limit`` keys after the last one read (the position: its event time and id)."""
        after = tuple(json.loads(position)) if position else None
        rows = self.run(listing.statement("duckdb", plugin_id, after, limit), 0)
        assert isinstance(rows, list)
        keys = [(str(user), str(event_id)) for user, event_id, _ in rows]
        if len(rows) < limit:
            return ListingPage(keys, None)
        _, event_id, event_time = rows[-1]
        return ListingPage(keys, json.dumps([str(event_time), str(event_id)]))


def literal(value: str | bool) -> str:
    """An Athena execution parameter: a SQL literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + value.replace("'", "''") + "'"


class AthenaLake:
    dialect: Dialect = "athena"
    immediate = False

    def __init__(
        self,
        client: Callable[[], Any],
        workgroup: str,
        database: str,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._athena = client  # made on the first question: no cold start pays for it
        self._workgroup = workgroup
        self._database = database
        self._sleep = sleep
        self._clock = clock

    def run(self, statement: Statement, wait_s: float) -> Rows | str:
        deadline = self._clock() + wait_s
        query_id = self._start(statement)
        pause = POLL_FIRST_S
        while True:
            state = self._state(query_id)
            if state == "SUCCEEDED":
                return self._rows(query_id)
            if self._clock() + pause > deadline:
                return query_id
            self._sleep(pause)
            pause = min(pause * 2, POLL_MAX_S)

    def fetch(self, query_id: str, plugin_id: str) -> Rows | str | None:
        try:
            execution = self._athena().get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        except ClientError as exc:
            if error_code(exc) == "InvalidRequestException":
                return None  # no such query
            raise StorageUnavailable("The lake is unavailable; retry later") from exc
        parameters = execution.get("ExecutionParameters") or []
        if execution.get("WorkGroup") != self._workgroup or parameters[:1] != [
            literal(lake_partition(plugin_id))
        ]:
            return None  # another plugin's (or another stack's) query: as if it did not exist
        if self._state(query_id, execution) == "SUCCEEDED":
            return self._rows(query_id)
        return query_id

    def listing_page(
        self, listing: Listing, plugin_id: str, position: str | None, limit: int
    ) -> ListingPage | None:
        """The listing is one query, started by the first call (which answers no keys yet), its answer
        then read a page (at most 1,000 rows) per call after the page token the position keeps; None
        while the query runs."""
        if position is None:
            query_id = self._start(listing.statement("athena", plugin_id))
            return ListingPage([], json.dumps({"q": query_id}))
        kept = json.loads(position)
        query_id, token = str(kept["q"]), kept.get("t")
        if self._state(query_id) != "SUCCEEDED":
            return None
        paging = {"NextToken": token} if token else {}
        page = self._call(
            "get_query_results", QueryExecutionId=query_id, MaxResults=min(limit, RESULT_PAGE), **paging
        )
        rows = page["ResultSet"]["Rows"][0 if token else 1 :]  # the first page's first row names the columns
        keys = [
            (str(row["Data"][0].get("VarCharValue")), str(row["Data"][1].get("VarCharValue"))) for row in rows
        ]
        following = page.get("NextToken")
        return ListingPage(keys, json.dumps({"q": query_id, "t": following}) if following else None)

    def _start(self, statement: Statement) -> str:
        """Start the statement in the workgroup, every parameter a literal: its query id."""
        started = self._call(
            "start_query_execution",
            QueryString=statement.sql,
            QueryExecutionContext={"Database": self._database},
            WorkGroup=self._workgroup,
            ExecutionParameters=[literal(value) for value in statement.parameters],
        )
        return str(started["QueryExecutionId"])

    def _state(self, query_id: str, execution: dict[str, Any] | None = None) -> str:
        if execution is None:
            execution = self._call("get_query_execution", QueryExecutionId=query_id)["QueryExecution"]
        status = execution["Status"]
        state = str(status["State"])
        if state in ("FAILED", "CANCELLED"):
            reason = status.get("StateChangeReason", state.lower())
            raise LakeQueryFailed(f"The lake query did not finish ({reason}); narrow the range or retry")
        return state

    def _rows(self, query_id: str) -> Rows:
        rows: Rows = []
        token: dict[str, str] = {}
        header = True
        while True:
            page = self._call("get_query_results", QueryExecutionId=query_id, MaxResults=RESULT_PAGE, **token)
            for row in page["ResultSet"]["Rows"]:
                if header:  # the first row of the first page names the columns
                    header = False
                    continue
                rows.append(tuple(cell.get("VarCharValue") for cell in row["Data"]))
            if "NextToken" not in page:
                return rows
            token = {"NextToken": page["NextToken"]}

    def _call(self, operation: str, **arguments: Any) -> Any:
        try:
            return getattr(self._athena(), operation)(**arguments)
        except ClientError as exc:
            raise StorageUnavailable(f"The lake is unavailable ({error_code(exc)}); retry later") from exc
