"""A deletion's rewrite of the deployed lake (``AthenaLakeEraser``) on moto's S3 with Athena faked:
the person's ids bound as one parameter, each file holding them replaced by what Athena's UNLOAD
wrote of its other rows, files of another plugin or bucket never touched, a search still running
asked again rather than started twice."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.unit.test_lake_questions import FakeAthena
from tracking.storage.lake_engines import AthenaLake
from tracking.storage.lake_erasers import AthenaLakeEraser

BUCKET = "lake-bucket"
FILE_KEY = "events/plugin_id=p1/day=2026-11-20/batch-1.parquet"
FILE = f"s3://{BUCKET}/{FILE_KEY}"


class UnloadingAthena(FakeAthena):
    """The fake Athena, whose UNLOAD writes one file of the rows it kept where it was told to."""

    def __init__(self, s3: Any, polls: int = 0) -> None:
        super().__init__(polls=polls, rows=[[FILE, "2"]])
        self.s3 = s3

    def start_query_execution(self, **request: Any) -> dict[str, Any]:
        found = re.search(r"TO 's3://([^/]+)/([^']+)'", request["QueryString"])
        if request["QueryString"].startswith("UNLOAD") and found:
            self.s3.put_object(Bucket=found[1], Key=f"{found[2]}part-0.parquet", Body=b"kept rows")
        return super().start_query_execution(**request)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key=FILE_KEY, Body=b"all rows")
        yield client


def eraser(athena: FakeAthena, s3: Any) -> AthenaLakeEraser:
    clock = [0.0]
    engine = AthenaLake(
        lambda: athena, "wg", "db", sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0]
    )
    return AthenaLakeEraser(engine, lambda: s3, BUCKET)


def keys(s3: Any) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_a_file_holding_the_person_is_replaced_by_its_other_rows(s3: Any) -> None:
    athena = UnloadingAthena(s3)
    lake = eraser(athena, s3)
    assert lake.holding("p1", ["gone", "it's"]) == [FILE]
    search = athena.started[0]
    assert search["ExecutionParameters"] == ["'p1'", """'["gone", "it''s"]'""", """'["gone", "it''s"]'"""]
    assert "gone" not in search["QueryString"]
    assert lake.erase("p1", FILE, ["gone", "it's"]) == 2
    unload = athena.started[1]
    assert unload["QueryString"].startswith("UNLOAD (SELECT event_id, dialect,")
    assert unload["ExecutionParameters"][:3] == ["'p1'", "'2026-11-20'", f"'{FILE}'"]
    assert keys(s3) == ["events/plugin_id=p1/day=2026-11-20/batch-1-r0.parquet"]
    kept = s3.get_object(Bucket=BUCKET, Key="events/plugin_id=p1/day=2026-11-20/batch-1-r0.parquet")
    assert kept["Body"].read() == b"kept rows"


@pytest.mark.parametrize(
    "file",
    [
        f"s3://{BUCKET}/events/plugin_id=p2/day=2026-11-20/batch-1.parquet",  # another plugin's
        f"s3://other-bucket/{FILE_KEY}",  # another bucket
        f"s3://{BUCKET}/events/plugin_id=p1/../p2/x.parquet",  # a path that climbs out
    ],
)
def test_a_file_that_is_not_one_of_the_plugins_is_never_touched(s3: Any, file: str) -> None:
    athena = UnloadingAthena(s3)
    assert eraser(athena, s3).erase("p1", file, ["gone"]) == 0
    assert athena.started == []
    assert keys(s3) == [FILE_KEY]


def test_a_search_still_running_is_asked_again_not_started_twice(s3: Any) -> None:
    athena = UnloadingAthena(s3, polls=1_000)
    lake = eraser(athena, s3)
    assert lake.holding("p1", ["gone"]) is None
    assert lake.holding("p1", ["gone"]) is None
    assert len(athena.started) == 1
    athena.polls = 0
    assert lake.holding("p1", ["gone"]) == [FILE]
    assert len(athena.started) == 1
