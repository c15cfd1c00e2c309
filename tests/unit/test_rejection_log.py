"""Recording rejections at bounded cost: one write per request at most, a cap per plugin per minute,
and counts past the cap kept until they can ride on a record."""

from __future__ import annotations

from collections import Counter

from tracking.ingest.rejections import RejectionLog
from tracking.models.rejections import Rejection, RejectionRecord
from tracking.models.storage_failures import StorageUnavailable

BAD = Rejection("VALIDATION", "The payload failed validation")
BIG = Rejection("ANALYTICS_002", "A call is at most 32768 bytes")


class Sink:
    def __init__(self) -> None:
        self.records: list[RejectionRecord] = []
        self.down = False

    def record(self, record: RejectionRecord) -> None:
        if self.down:
            raise StorageUnavailable("down")
        self.records.append(record)


class Clock:
    def __init__(self) -> None:
        self.now = 1_764_016_800.0

    def __call__(self) -> float:
        return self.now


def total(sink: Sink) -> Counter[str]:
    counts: Counter[str] = Counter()
    for record in sink.records:
        counts.update(record.counts)
    return counts


def test_a_request_costs_one_record_whatever_its_rejections() -> None:
    sink = Sink()
    RejectionLog(sink).record("p", "segment", [BAD, BAD, BIG])
    (record,) = sink.records
    assert (record.plugin_id, record.dialect, record.counts) == (
        "p",
        "segment",
        {"VALIDATION": 2, "ANALYTICS_002": 1},
    )
    assert record.rejections == (BAD, BAD, BIG)


def test_past_the_cap_rejections_are_counted_and_ride_on_a_later_record() -> None:
    # Given a cap of 3 records a minute
    sink, clock = Sink(), Clock()
    log = RejectionLog(sink, per_minute=3, clock=clock)
    # When 10 requests are refused within a second
    for _ in range(10):
        log.record("p", "widget", [BAD])
        clock.now += 0.1
    # Then 3 are recorded, the other 7 are only counted
    assert len(sink.records) == 3
    assert total(sink) == {"VALIDATION": 3}
    # and 10 s later, the next request writes them as one count-only record
    clock.now += 10
    log.flush_due()
    assert len(sink.records) == 4
    assert sink.records[-1].rejections == ()
    assert total(sink) == {"VALIDATION": 10}


def test_counts_past_the_cap_also_ride_on_the_next_minutes_first_record() -> None:
    sink, clock = Sink(), Clock()
    log = RejectionLog(sink, per_minute=1, clock=clock)
    log.record("p", "widget", [BAD])
    log.record("p", "widget", [BAD])  # over the cap, counted
    clock.now += 60
    log.record("p", "widget", [BIG])
    assert total(sink) == {"VALIDATION": 2, "ANALYTICS_002": 1}
    assert len(sink.records) == 2


def test_plugins_have_caps_of_their_own() -> None:
    sink = Sink()
    log = RejectionLog(sink, per_minute=1)
    for plugin in ("a", "b", "a", "b"):
        log.record(plugin, "plugin", [BAD])
    assert [r.plugin_id for r in sink.records] == ["a", "b"]


def test_a_failed_write_keeps_its_counts_for_the_next_record() -> None:
    sink, clock = Sink(), Clock()
    log = RejectionLog(sink, clock=clock)
    sink.down = True
    log.record("p", "widget", [BAD, BAD])
    sink.down = False
    clock.now += 11
    log.flush_due()
    assert total(sink) == {"VALIDATION": 2}


def test_nothing_is_written_without_rejections() -> None:
    sink = Sink()
    log = RejectionLog(sink)
    log.record("p", "widget", [])
    log.flush_due()
    assert sink.records == []


def test_a_rejection_mentions_an_id_as_a_json_string_not_as_any_substring() -> None:
    payload = '{"type":"track","userId":"user-12","anonymousId":"ano\\"n"}'
    rejection = Rejection("VALIDATION", "bad", ({"field": "event", "message": "required"},), payload)
    assert rejection.mentions(["user-12"])
    assert rejection.mentions(['ano"n'])  # as JSON escapes it
    assert not rejection.mentions(["user-1"])  # a prefix of an id is another id
    # Cut short at the payload's end: the part that is kept still names the person
    cut = Rejection("VALIDATION", "bad", (), '{"type":"track","userId":"a-very-long-user-id-that-was-c')
    assert cut.mentions(["a-very-long-user-id-that-was-cut-at-2-kb"])
    assert not cut.mentions(["someone-else"])
    # Named in the details (a refused link says which ids it would have joined)
    link = Rejection(
        "VALIDATION", "The link was refused", ({"field": "anonymousId", "message": "'v-9' is ..."},)
    )
    assert link.mentions(["v-9"])
    # Redacted: still counted and listed, naming nobody
    assert not rejection.redacted().mentions(["user-12"])
    assert rejection.redacted().code == "VALIDATION"
