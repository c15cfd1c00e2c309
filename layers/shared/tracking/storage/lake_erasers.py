"""A person's rows out of the lake (the forget function's last phase, ``tracking.forget.service``):
the files of the plugin holding a row of one of the ids, as a user or an anonymous id, and each of
those files rewritten without them. Parquet files are never edited: a file is written anew and takes
the old one's place.

Locally the files are on disk and DuckDB finds and rewrites them. On AWS, Athena does both over the
Glue table of the files (``events_raw``, not the view): a query lists the S3 objects (``"$path"``)
holding the ids' rows and how many, then one ``UNLOAD`` per object writes its other rows to a staging
prefix as Parquet; the staged files are copied into the object's partition and the object is deleted.
The ids are bound as one JSON array parameter, never spliced.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tracking.lake.questions import Statement
from tracking.lake.schema import COLUMNS, RAW_TABLE, lake_partition
from tracking.storage.lake_engines import AthenaLake, duckdb_connect

# A forget step (60 s) checks its clock (20 s) between files: a search and a rewrite stay within.
HOLDING_WAIT_S = 10.0
UNLOAD_WAIT_S = 20.0
STAGING = "rewrites/"


class LocalLakeEraser:
    """A person's rows out of the local lake's files: the files of the plugin holding a row of an id
    (as a user or as an anonymous id), each rewritten without them, aside then renamed into place (a
    file left with no row is removed)."""

    def __init__(self, lake_dir: Path) -> None:
        self._lake = lake_dir

    def holding(self, plugin_id: str, ids: Sequence[str]) -> list[str] | None:
        folder = self._lake / "events" / f"plugin_id={lake_partition(plugin_id)}"
        files = sorted(str(path) for path in folder.glob("day=*/*.parquet"))
        if not files or not ids:
            return []
        connection = _with_ids(ids)
        try:
            found = connection.execute(
                "SELECT DISTINCT filename FROM read_parquet(?, filename = true) "
                "WHERE user_id IN (SELECT id FROM forgotten) OR anonymous_id IN (SELECT id FROM forgotten)",
                [files],
            ).fetchall()
        finally:
            connection.close()
        return sorted(str(row[0]) for row in found)

    def erase(self, plugin_id: str, file: str, ids: Sequence[str]) -> int:
        path = Path(file)
        own = self._lake / "events" / f"plugin_id={lake_partition(plugin_id)}"
        if not path.resolve().is_relative_to(own.resolve()) or not path.exists():
            return 0
        return rewrite_without(path, ids)


def rewrite_without(path: Path, ids: Sequence[str]) -> int:
    """Rewrite one Parquet file of the lake without the rows of these ids; the rows removed."""
    connection = _with_ids(ids)
    aside = path.with_name(f".{path.name}.rewrite")
    try:
        source = str(path).replace("'", "''")
        kept = (
            f"SELECT * FROM read_parquet('{source}') "  # noqa: S608 - our own file's path, quoted
            "WHERE user_id NOT IN (SELECT id FROM forgotten) "
            "AND (anonymous_id IS NULL OR anonymous_id NOT IN (SELECT id FROM forgotten))"
        )
        total = connection.execute(f"SELECT count(*) FROM read_parquet('{source}')").fetchone()[0]  # noqa: S608
        left = connection.execute(f"SELECT count(*) FROM ({kept})").fetchone()[0]  # noqa: S608
        if left == total:
            return 0
        if left:
            target = str(aside).replace("'", "''")
            connection.execute(f"COPY ({kept}) TO '{target}' (FORMAT parquet, COMPRESSION snappy)")
            os.replace(aside, path)
        else:
            path.unlink()
        return int(total - left)
    finally:
        connection.close()
        aside.unlink(missing_ok=True)


def _with_ids(ids: Sequence[str]) -> Any:
    """A DuckDB connection holding the ids in a table ``forgotten`` (bound, never spliced)."""
    connection = duckdb_connect()
    connection.execute("CREATE TEMP TABLE forgotten (id VARCHAR)")
    connection.executemany("INSERT INTO forgotten VALUES (?)", [[i] for i in ids])
    return connection


class AthenaLakeEraser:
    """The deployed lake: Athena finds and rewrites, S3 holds the files (``LakeBucket``)."""

    def __init__(self, athena: AthenaLake, s3: Callable[[], Any], bucket: str) -> None:
        self._athena = athena
        self._client = s3  # made on the first rewrite
        self._bucket = bucket
        self._running: dict[tuple[str, str], str] = {}  # a search still running, by (plugin, ids)
        # What a search found and is not rewritten yet: the ids' rows in each file, by (plugin, ids)
        self._found: dict[tuple[str, str], dict[str, int]] = {}

    def holding(self, plugin_id: str, ids: Sequence[str]) -> list[str] | None:
        forgotten = json.dumps(list(ids))
        asked = (plugin_id, forgotten)
        if self._found.get(asked):
            return sorted(self._found[asked])
        if asked in self._running:
            found = self._athena.fetch(self._running[asked], plugin_id)
        else:
            statement = Statement(
                f'SELECT "$path", count(*) FROM {RAW_TABLE} WHERE plugin_id = ? AND ('  # noqa: S608
                "contains(CAST(json_parse(?) AS ARRAY(VARCHAR)), user_id) OR "
                "contains(CAST(json_parse(?) AS ARRAY(VARCHAR)), anonymous_id)) GROUP BY 1",
                (lake_partition(plugin_id), forgotten, forgotten),
            )
            found = self._athena.run(statement, HOLDING_WAIT_S)
        if isinstance(found, str):
            self._running[asked] = found
            return None
        self._running.pop(asked, None)
        self._found[asked] = {str(path): int(rows) for path, rows in found or []}
        return sorted(self._found[asked])

    def erase(self, plugin_id: str, file: str, ids: Sequence[str]) -> int:
        key = self._own_key(plugin_id, file)
        if key is None:
            return 0
        day = key.split("/")[2].removeprefix("day=")
        staging = f"{STAGING}{lake_partition(plugin_id)}/{day}/{time.time_ns()}/"
        forgotten = json.dumps(list(ids))
        columns = ", ".join(name for name, _ in COLUMNS)
        statement = Statement(
            f"UNLOAD (SELECT {columns} FROM {RAW_TABLE} WHERE plugin_id = ? AND day = ? "  # noqa: S608
            'AND "$path" = ? AND NOT contains(CAST(json_parse(?) AS ARRAY(VARCHAR)), user_id) '
            "AND NOT coalesce(contains(CAST(json_parse(?) AS ARRAY(VARCHAR)), anonymous_id), false)) "
            f"TO 's3://{self._bucket}/{staging}' WITH (format = 'PARQUET', compression = 'SNAPPY')",
            (lake_partition(plugin_id), day, file, forgotten, forgotten),
        )
        if isinstance(self._athena.run(statement, UNLOAD_WAIT_S), str):
            return 0  # still writing: the file still holds the rows, the next step finds it again
        folder, name = key.rsplit("/", 1)
        listed = self._client().list_objects_v2(Bucket=self._bucket, Prefix=staging).get("Contents", [])
        for number, staged in enumerate(sorted(item["Key"] for item in listed)):
            target = f"{folder}/{name.removesuffix('.parquet')}-r{number}.parquet"
            source = {"Bucket": self._bucket, "Key": staged}
            self._client().copy_object(Bucket=self._bucket, Key=target, CopySource=source)
            self._client().delete_object(Bucket=self._bucket, Key=staged)
        self._client().delete_object(Bucket=self._bucket, Key=key)
        return self._found.get((plugin_id, forgotten), {}).pop(file, 0)

    def _own_key(self, plugin_id: str, file: str) -> str | None:
        """The object's key, if the file is one of this plugin's in the lake's bucket."""
        prefix = f"s3://{self._bucket}/"
        key = file.removeprefix(prefix)
        parts = key.split("/")
        if (
            not file.startswith(prefix)
            or len(parts) != 4
            or parts[:2] != ["events", f"plugin_id={lake_partition(plugin_id)}"]
            or not parts[2].startswith("day=")
        ):
            return None
        return key
