"""SQL over the local lake with DuckDB: the view ``events`` that every reader uses (the lake's columns,
its partitions from the path, each event once: a delivery's repeats removed by ``event_id``), and
``tracking-local sql``. The same SQL runs in Athena against the deployed Glue table: standard SQL, and
Athena's ``json_extract_scalar`` for a JSON column's field (defined here for DuckDB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracking.lake.schema import COLUMNS, DUCKDB_TYPES, PARTITIONS

# Athena's (Trino's) names for what DuckDB calls otherwise, so that one statement runs in both.
ATHENA_FUNCTIONS = (
    "CREATE OR REPLACE MACRO json_extract_scalar(document, path) AS json_extract_string(document, path)",
)


def events_view(lake_dir: Path) -> str:
    """The statement creating the view ``events`` over the lake's files (an empty one before any)."""
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


def connect(lake_dir: Path) -> Any:
    """A DuckDB connection (in memory) with the view ``events`` over the lake."""
    import duckdb  # noqa: PLC0415 - only the local tools import DuckDB

    connection = duckdb.connect()
    connection.execute(events_view(lake_dir))
    for statement in ATHENA_FUNCTIONS:
        connection.execute(statement)
    return connection


def run_sql(lake_dir: Path, statement: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The columns and rows of one statement over the local lake."""
    connection = connect(lake_dir)
    try:
        cursor = connection.execute(statement)
        names = [column[0] for column in cursor.description or []]
        return names, cursor.fetchall()
    finally:
        connection.close()
