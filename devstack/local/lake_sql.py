"""``tracking-local sql``: one statement over the local lake, through the same DuckDB view ``events``
the query function reads (``tracking.storage.lake_engines``). The same SQL runs in Athena against the
deployed Glue table: standard SQL, and Athena's ``json_extract_scalar`` for a JSON column's field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracking.storage.lake_engines import duckdb_connection


def run_sql(lake_dir: Path, statement: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The columns and rows of one statement over the local lake."""
    connection = duckdb_connection(lake_dir)
    try:
        cursor = connection.execute(statement)
        names = [column[0] for column in cursor.description or []]
        return names, cursor.fetchall()
    finally:
        connection.close()
