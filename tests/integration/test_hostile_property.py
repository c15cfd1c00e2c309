"""The attacker's property: whatever a client without credentials sends to any ingest route (lone
surrogates, NUL, numbers no table holds, timestamps at the ends of the calendar, deep nesting, wrong
types, gzip and deflate bodies, broken or lying compression), no answer is a 500 or a 503, whatever
was stored aggregates without a failed record, and then every dashboard read of the plugin (columns,
every page of rows, every user's row, every part of the CSV export, rejections, the chatbot summary)
answers 200 with a body its reader can decode and Lambda can return.

Bounded in ``make test``; ``HOSTILE_EXAMPLES=20000`` runs it at length (see PERFORMANCE.md)."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import itertools
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event, assert_contract_error
from tests.integration.conftest import TEMPLATE, aggregate_stored_events, new_container, stored_events
from tracking.api_errors import CLIENT_ERROR_CODES
from tracking.keys import SEP

PLUGIN = "hostile"
WRITE_KEY = "wk_hostile_key_01"
BASIC = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
CONFIG = {
    "tracking": {
        "events": [
            {"key": "emoji", "name": {"en": "Emoji"}, "aggregations": ["group_array", "increment"]},
            {
                "key": "score",
                "name": {"en": "Score"},
                "aggregations": ["average", "array"],
                "value_type": "number",
            },
            {"key": "link", "name": {"en": "Link"}, "aggregations": ["string"], "value_type": "url"},
            {"key": "flag", "name": {"en": "Flag"}, "aggregations": ["array"], "value_type": "boolean"},
            {"key": "Order Completed", "name": {"en": "Orders"}, "aggregations": ["increment", "array"]},
        ]
    },
    "write_keys": [WRITE_KEY],
}
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "60"))
LAMBDA_RESPONSE_MAX = 6 * 1024 * 1024
CLIENT_CODES = set(CLIENT_ERROR_CODES) - {"UNAVAILABLE"}

# --- hostile values ------------------------------------------------------------------------------------
# Values a table can hold but a careless reader chokes on; then, in some calls, one poison value (what
# no table holds or the contract refuses) put somewhere in the payload: a call carrying poison must be
# refused whole, and one without must not break anything downstream.

# Any character that is text (no lone surrogate, no NUL): control characters, bidi marks, astral planes.
text_characters = st.characters(codec="utf-8", exclude_characters="\x00")
nasty_strings = st.one_of(
    st.text(text_characters, max_size=30),
    st.text(text_characters, min_size=300, max_size=800),
    st.integers(min_value=1, max_value=400).map(lambda n: "😍" * n),
    st.sampled_from(
        ["", f"a{SEP}b", "\u202e", "=cmd|' /C calc'!A0", '"\r\n,', "null", "%00", "\ufeff", "𝕏" * 40, "\\"]
    ),
)
storable_numbers = st.one_of(
    st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1),
    st.floats(min_value=-9e125, max_value=9e125).filter(lambda x: x == 0 or abs(x) >= 1e-129),
    st.sampled_from([0, -0.0, 1e-129, 9.9e125, 12345678901234567890123456789012345678]),
)
extreme_times = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "2025-11-24T20:00:00+14:00",
            "2025-11-24T20:00:00.999999Z",
            "2025-11-24",
        ]
    ),
    st.datetimes(timezones=st.none()).map(lambda t: t.isoformat() + "Z"),
)
# Numbers sent as text, where prices and revenues may be: storable, and not (a 422 naming the field).
numeric_strings = st.one_of(
    storable_numbers.map(str),
    st.sampled_from(
        ["1.23456789012345678901234567890123456789", "1e200", "-1E-131", "NaN", "Infinity", " 12.5 "]
    ),
)
prices = st.one_of(storable_numbers, numeric_strings)
scalars = st.one_of(st.none(), st.booleans(), storable_numbers, nasty_strings)


def nested(depth: int, leaf: Any) -> Any:
    for level in range(depth):
        leaf = [leaf] if level % 2 else {"n": leaf}
    return leaf


json_values = st.one_of(
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_strings, inner, max_size=4),
        max_leaves=10,
    ),
    st.builds(nested, st.integers(min_value=5, max_value=60), scalars),
)
# The contract's input hygiene refuses these wherever they are in a call: the call is refused whole.
REFUSED_ANYWHERE: list[Any] = [
    *["\x00", "a\x00b", "\ud800", "\udc00x", "\udfff"],
    *[1e-131, -1e-131, 1e126, 10**38 + 1, -(10**39 + 7), 5e-324, 1.7976931348623157e308],
    *[float("nan"), float("inf"), float("-inf")],  # json.dumps writes NaN, Infinity
]
poisons = st.one_of(
    st.sampled_from(REFUSED_ANYWHERE),
    st.sampled_from(["+275760-09-13T00:00:00Z", "2025-02-30T00:00:00Z", "T", "-1"]),
    st.builds(nested, st.integers(min_value=200, max_value=900), st.none()),
    st.sampled_from([[], {}, True, 7, "x"]),  # wrong types, for whichever field they land in
)


def sometimes(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the field's plausible value, now and then any JSON value at all."""
    # (one_of would give the branches equal weight however often one is repeated)
    return st.sampled_from([False] * 9 + [True]).flatmap(lambda odd: json_values if odd else plausible)


@st.composite
def poisoned(draw: st.DrawFn, payloads: st.SearchStrategy[Any]) -> Any:
    """A payload, and in two calls of five one poison value in one of its objects (a field's value
    replaced, or a field added, anywhere in the tree)."""
    payload = draw(payloads)
    if not draw(st.sampled_from([False, False, False, True, True])):
        return payload
    objects = [node for node in walk(payload) if isinstance(node, dict)]
    if objects:
        target = draw(st.sampled_from(objects))
        name = draw(st.sampled_from(sorted(target)) if target and draw(st.booleans()) else nasty_strings)
        target[name] = draw(poisons)
    return payload


def walk(value: Any) -> list[Any]:
    """Every value in a JSON tree, and every object's keys."""
    found, pending = [], [value]
    while pending:
        node = pending.pop()
        found.append(node)
        if isinstance(node, dict):
            pending += [*node.keys(), *node.values()]
        elif isinstance(node, list):
            pending += node
    return found


def carries_refused(value: Any, refused_values: list[Any] = REFUSED_ANYWHERE) -> bool:
    """Whether the contract refuses a call carrying ``value`` whatever the field (same type and value
    as a refused one: the float 1e38 is storable where the integer 10**38 is not)."""
    return any(
        type(node) is type(refused) and (node == refused or node != node)  # NaN
        for node in walk(value)
        for refused in refused_values
    )


REFUSED_TEXT = [value for value in REFUSED_ANYWHERE if isinstance(value, str)]


@dataclass(frozen=True)
class Expected:
    """What the contract says of a hostile call: refused whole (400 or 422), or, for a batch whose
    poison sits in one of its calls, that call refused alone (listed, or a 422 if no call is valid)."""

    whole: bool = False
    calls: frozenset[int] = frozenset()


def expected_of(path: str, payload: Any) -> Expected:
    if path == "/v1/m" or not carries_refused(payload):
        return Expected()
    batch = payload.get("batch") if isinstance(payload, dict) else None
    if path not in SEGMENT_BATCH or not isinstance(batch, list) or carries_refused(payload, REFUSED_TEXT):
        return Expected(whole=True)  # text no read could encode: the whole body, whatever it is
    rest = {name: value for name, value in payload.items() if name != "batch"}
    if carries_refused(rest):
        return Expected(whole=True)  # in what every call inherits
    return Expected(calls=frozenset(i for i, call in enumerate(batch) if carries_refused(call)))


# --- calls of each dialect -------------------------------------------------------------------------------

# Identifiers the contract accepts (no control characters), as odd as they come.
user_ids = st.one_of(
    st.sampled_from(["participant-1", "😍", "=1+1", "a b", "𝕏" * 40, "\u202e", "u/../x", "%2F"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=1, max_size=40),
    # Near and past the byte caps of DynamoDB's keys (512 bytes of UTF-8 for an identifier).
    st.integers(min_value=100, max_value=140).map(lambda n: "😍" * n),
    st.integers(min_value=500, max_value=520).map(lambda n: "u" * n),
)
widget_items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "item_id": sometimes(st.just("SKU-1")),
            "price": sometimes(prices),
            "value": sometimes(prices),
            "quantity": sometimes(storable_numbers),
            "currency": sometimes(st.sampled_from(["EUR", "USD", "XYZ"])),
        },
    ),
    max_size=5,
)
widget_calls = st.fixed_dictionaries(
    {
        "event": sometimes(
            st.sampled_from(["visitor", "purchase", "tracktrans", "added_to_cart", "bot_open"])
        ),
        "token": sometimes(st.sampled_from(["user_abc123def450", "user_abc123def451"])),
        "data": st.fixed_dictionaries(
            {"chatbot_id": sometimes(st.just(PLUGIN))},
            optional={
                "orderNum": sometimes(nasty_strings),
                "open_way": sometimes(st.sampled_from(["popup", "chat_button"])),
                "url": sometimes(nasty_strings),
                "items": sometimes(widget_items),
            },
        ),
    },
)
plugin_calls = st.fixed_dictionaries(
    {
        "key": sometimes(st.sampled_from(["emoji", "score", "link", "flag", "undeclared"])),
        "user_id": sometimes(user_ids),
    },
    optional={"value": json_values},
)
plugin_payloads = st.one_of(
    plugin_calls,
    st.fixed_dictionaries(
        {"events": st.lists(plugin_calls, max_size=8)}, optional={"user_id": sometimes(user_ids)}
    ),
)
objects = st.dictionaries(nasty_strings, json_values, max_size=4)
SEGMENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")
# What each call type needs besides a user, as analytics.js and the server libraries send it.
SEGMENT_NEEDS = {
    "track": {"event": st.sampled_from(["emoji", "score", "Order Completed", "Product Added", "Signed Up"])},
    "group": {"groupId": user_ids},
    "alias": {"previousId": user_ids},
}
SEGMENT_OPTIONAL = {
    "messageId": nasty_strings,
    "anonymousId": user_ids,
    "name": nasty_strings,
    "properties": st.fixed_dictionaries(
        {},
        optional={
            "value": json_values,
            "price": prices,
            "revenue": prices,
            "currency": st.sampled_from(["EUR", "USD", "XYZ"]),
            "order_id": nasty_strings,
            "products": widget_items,
        },
    ),
    "traits": objects,
    "context": objects,
    "integrations": objects,
    "timestamp": extreme_times,
    "sentAt": extreme_times,
    "originalTimestamp": extreme_times,
}


@st.composite
def segment_calls(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    needs = {name: sometimes(values) for name, values in SEGMENT_NEEDS.get(kind, {}).items()}
    optional = {name: sometimes(values) for name, values in SEGMENT_OPTIONAL.items()}
    call: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {"type": sometimes(st.just(kind)), "userId": sometimes(user_ids), **needs}, optional=optional
        )
    )
    return call


def segment_single(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    return segment_calls(kind).map(lambda call: {**call, "writeKey": WRITE_KEY})


# A batch-level context every call inherits: small, or large enough to push calls past 32 KB and the
# batch past what it may store.
batch_contexts = st.one_of(
    objects, st.integers(min_value=1_000, max_value=40_000).map(lambda n: {"blob": "c" * n, "ip": "1"})
)
segment_batches = st.fixed_dictionaries(
    {"batch": st.lists(st.sampled_from(SEGMENT_TYPES).flatmap(segment_calls), min_size=1, max_size=6)},
    optional={"sentAt": extreme_times, "context": batch_contexts, "writeKey": st.just(WRITE_KEY)},
)


@st.composite
def link_chains(draw: st.DrawFn) -> dict[str, Any]:
    """Ids linked one into the next (as far as the rules let), each with an event: up to 12 deep,
    built from the head down or the tail up, a user among them now and then."""
    length = draw(st.integers(min_value=2, max_value=12))
    ids = [f"chain-{draw(st.integers(0, 3))}-{n}" for n in range(length)]
    calls: list[dict[str, Any]] = [
        {"type": "track", "event": "emoji", "anonymousId": i, "properties": {"value": "x"}} for i in ids
    ]
    # From the head down (each id linked into the one before), or from the tail up (into the next).
    down = draw(st.booleans())
    pairs = [(b, a) if down else (a, b) for a, b in itertools.pairwise(ids)]
    for anonymous, user in pairs:
        kind = draw(st.sampled_from(["alias", "identify"]))
        calls.append(
            {"type": "alias", "previousId": anonymous, "userId": user}
            if kind == "alias"
            else {"type": "identify", "anonymousId": anonymous, "userId": user}
        )
    return {"batch": calls}


@st.composite
def trait_floods(draw: st.DrawFn) -> dict[str, Any]:
    """Identify calls whose traits have many names, long names and long values."""
    users = draw(st.lists(user_ids, min_size=1, max_size=3))
    calls = []
    for user in users:
        count = draw(st.integers(min_value=1, max_value=160))
        name_length = draw(st.sampled_from([1, 40, 256, 300, 2_000]))
        value = draw(st.sampled_from(["v", "😀" * 200, {"nested": ["x" * 900]}]))
        traits = {f"{n:03d}" + "n" * name_length: value for n in range(count)}
        calls.append(
            {
                "type": draw(st.sampled_from(["identify", "group"])),
                "userId": user,
                "groupId": "g",
                "traits": traits,
            }
        )
    return {"batch": calls}


@st.composite
def history_imports(draw: st.DrawFn) -> dict[str, Any]:
    """One user's history: an event a day (or every few days) over up to 400 days, years ago."""
    days = draw(st.integers(min_value=1, max_value=400))
    step = draw(st.integers(min_value=1, max_value=30))
    first = datetime(draw(st.integers(min_value=2000, max_value=2024)), 1, 1, 12, tzinfo=UTC)
    key = draw(st.sampled_from(["emoji", "score", "Signed Up"]))
    return {
        "batch": [
            {
                "type": "track",
                "event": key,
                "userId": "historian",
                "messageId": f"import-{first.year}-{n}",
                "timestamp": (first + timedelta(days=n * step)).isoformat(),
                "properties": {"value": n},
            }
            for n in range(days)
        ]
    }


# Each call type's path and analytics.js's short one.
SEGMENT_PATHS = {kind: (f"/v1/{kind}", f"/v1/{kind[0]}") for kind in SEGMENT_TYPES}
SEGMENT_BATCH = ["/v1/batch", "/v1/import", "/v1/b", "/beacon/v1/batch"]
WIDGET_POST = ["/api/analytics/track", "/api/events/track", "/api/save"]


def serialized(payload: Any) -> bytes:
    # ensure_ascii writes lone surrogates as \ud800 escapes, as a JavaScript client would.
    return json.dumps(payload).encode()


def compressed(raw: bytes, how: str) -> tuple[bytes, dict[str, str]]:
    """The body as sent: plain, gzip, deflate, compression that lies about itself, or cut short."""
    if how == "gzip":
        return gzip.compress(raw), {"Content-Encoding": "gzip"}
    if how == "deflate":
        return zlib.compress(raw), {"Content-Encoding": "deflate"}
    if how == "lying":
        return raw, {"Content-Encoding": "gzip"}
    if how == "truncated":
        return gzip.compress(raw)[:20], {"Content-Encoding": "gzip"}
    if how == "unknown":
        return raw, {"Content-Encoding": "br"}
    return raw, {}


encodings = st.sampled_from(["plain"] * 14 + ["gzip", "gzip", "deflate", "lying", "truncated", "unknown"])


@st.composite
def hostile_calls(draw: st.DrawFn) -> tuple[dict[str, Any], Expected]:
    """One API Gateway event for a random ingest route, with a hostile body; and what the contract
    says of it when it carries a value the contract refuses."""
    route = draw(
        st.sampled_from(
            ["widget", "widget-get", "plugin", "segment", "batch", "metrics", "chain", "traits", "import"]
        )
    )
    headers: dict[str, str] = {}
    if route == "widget-get":
        payload = draw(poisoned(widget_calls))
        # The GET form carries e and u as text (API Gateway decodes invalid UTF-8 to U+FFFD) and d as
        # JSON; whatever else the payload holds is not sent.
        sent = {
            name: str(payload[field]).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            for name, field in (("e", "event"), ("u", "token"))
            if field in payload
        }
        refused = carries_refused(payload["data"]) or any("\x00" in text for text in sent.values())
        query = {"d": json.dumps(payload["data"]), **sent}
        path = draw(st.sampled_from(["/api/analytics/track", "/api/events/track"]))
        return api_event("GET", path, query=query, ip="198.51.100.20"), Expected(whole=refused)
    if route == "widget":
        path, payloads = draw(st.sampled_from(WIDGET_POST)), widget_calls
    elif route == "plugin":
        path, payloads = f"/v1/plugins/{PLUGIN}/track", plugin_payloads
    elif route == "segment":
        kind = draw(st.sampled_from(SEGMENT_TYPES))
        path, payloads = draw(st.sampled_from(SEGMENT_PATHS[kind])), segment_single(kind)
        headers["Authorization"] = BASIC
    elif route == "batch":
        path, payloads = draw(st.sampled_from(SEGMENT_BATCH)), segment_batches
        headers["Authorization"] = BASIC
    elif route in ("chain", "traits", "import"):
        path = "/v1/import" if route == "import" else "/v1/batch"
        payloads = {"chain": link_chains(), "traits": trait_floods(), "import": history_imports()}[route]
        headers["Authorization"] = BASIC
    else:
        path, payloads = "/v1/m", json_values  # analytics.js's metrics: answered, never read
    payload = draw(poisoned(payloads))
    raw = serialized(payload)
    if draw(st.sampled_from([False] * 19 + [True])):
        # Nesting deeper than any parser's stack, where the payload's first field would be.
        depth = draw(st.integers(min_value=1_000, max_value=100_000))
        raw = b'{"a": ' + b"[" * depth + b"]" * depth + b", " + raw[1:] if raw.startswith(b"{") else raw
    body, extra = compressed(raw, draw(encodings))
    event = api_event("POST", path, headers={**headers, **extra}, raw=body, ip="198.51.100.20")
    return event, expected_of(path, payload)


# --- the stack on moto, reset between examples -------------------------------------------------------------


class Stack:
    """The three functions on one moto account, with fresh tables for each example."""

    def __init__(self, dynamodb: Any) -> None:
        self.dynamodb = dynamodb
        self.ingest = new_container("IngestFunction")
        self.query = new_container("QueryFunction")
        self.aggregate = new_container("AggregateFunction")

    def reset(self) -> None:
        for definition in TEMPLATE.table_definitions().values():
            create = definition["create"]
            self.dynamodb.delete_table(TableName=create["TableName"])
            self.dynamodb.create_table(**create)
        put = api_event(
            "PUT", f"/v1/plugins/{PLUGIN}/config", CONFIG, headers={"x-api-key": SAMPLE_ADMIN_KEY}
        )
        assert self.query(put)["statusCode"] == 200

    def read(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        answer = self.query(api_event("GET", path, query=query, headers={"x-api-key": SAMPLE_ADMIN_KEY}))
        assert answer["statusCode"] == 200, (path, query, answer.get("body", "")[:2_000])
        assert len(answer["body"].encode("utf-8")) <= LAMBDA_RESPONSE_MAX, path
        return answer


@pytest.fixture
def stack(function_env: Callable[..., None], aws: Any) -> Stack:
    function_env(RATE_LIMIT_PER_MINUTE="0", CONFIG_CACHE_SECONDS="0")
    return Stack(aws)


def check_answer(answer: dict[str, Any]) -> None:
    status = answer["statusCode"]
    body = answer.get("body") or ""
    # Storage is healthy: a 503 would mean a client's input broke a write.
    assert status in (200, 400, 401, 403, 404, 413, 415, 422), (status, body[:2_000])
    if status >= 400:
        assert_contract_error(json.loads(body), CLIENT_CODES)


def read_everything(stack: Stack) -> None:
    base = f"/v1/plugins/{PLUGIN}"
    stack.read(f"{base}/columns")
    stack.read(f"{base}/rejections")
    stack.read("/api/analytics/summary", {"chatbot_id": PLUGIN})
    users: list[str] = []
    cursor: str | None = None
    while True:
        page = json.loads(stack.read(f"{base}/rows", {"cursor": cursor} if cursor else None)["body"])
        users += [row["user_id"] for row in page["rows"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    for user in users:
        row = json.loads(stack.read(f"{base}/users/{quote(user, safe='')}")["body"])
        assert row["user_id"] == user
    exported: list[str] = []
    cursor = None
    while True:
        answer = stack.read(f"{base}/export.csv", {"cursor": cursor} if cursor else None)
        lines = list(csv.reader(io.StringIO(answer["body"])))
        exported += [line[0] for line in lines[1:]]
        cursor = (answer.get("multiValueHeaders") or {}).get("X-Next-Cursor", [None])[0]
        if not cursor:
            break
    assert sorted(exported) == sorted(map(as_exported, users))


def as_exported(text: str) -> str:
    """A cell a spreadsheet would run as a formula is exported behind a quote (numbers are not)."""
    try:
        Decimal(text)
    except ArithmeticError:
        return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
    return text


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(calls=st.lists(hostile_calls(), min_size=1, max_size=4))
def test_no_call_breaks_storage_aggregation_or_reads(
    stack: Stack, calls: list[tuple[dict[str, Any], Expected]]
) -> None:
    stack.reset()
    for call, expected in calls:
        answer = stack.ingest(call)
        check_answer(answer)
        said = (call["path"], call["body"], call["queryStringParameters"], answer.get("body", "")[:1_000])
        if expected.whole:
            assert answer["statusCode"] in (400, 422), said
        elif expected.calls and answer["statusCode"] == 200:
            listed = {rejected["index"] for rejected in json.loads(answer["body"])["rejected"]}
            assert expected.calls <= listed, said
        elif expected.calls:
            assert answer["statusCode"] in (400, 422), said
        event(f"{call['path'].rsplit('/', 1)[-1]}: {answer['statusCode']}")
    # Every stored event reads back as a canonical event, and the aggregator applies every record.
    event(f"events stored: {min(len(stored_events(stack.dynamodb)), 3)}+")
    aggregate_stored_events(stack.dynamodb, stack.aggregate)
    read_everything(stack)
