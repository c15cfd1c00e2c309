"""Breakdown and retention, answered from the lake (shared/API.md, "Raw events"): the question read
from the query string (``tracking.lake.questions``: a 422 for anything else), asked of the engine the
stack has (DuckDB locally, Athena deployed), answered within the wait, else ``202 {"query_id"}`` and
the same body from ``queries/{id}`` once ready. A query id names the engine's query and how to read
its rows; the engine answers it only to a caller of the plugin the query was asked for."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Protocol

from tracking.api_errors import NotFound, Unavailable, ValidationFailed
from tracking.lake.questions import (
    BadQuestion,
    Breakdown,
    Dialect,
    Retention,
    Statement,
    breakdown_of,
    retention_of,
)

Answer = tuple[int, dict[str, Any]]
Rows = list[tuple[Any, ...]]
WAIT_SECONDS = 20.0  # within the contract's 25 s, with the function's start and the reply around it


class LakeEngine(Protocol):
    """SQL over the lake: rows, or the id of a query still running."""

    dialect: Dialect
    immediate: bool  # every answer at once (a query id is answered by asking again)

    def run(self, statement: Statement, wait_s: float) -> Rows | str: ...
    def fetch(self, query_id: str, plugin_id: str) -> Rows | str | None: ...


class LakeQuestions:
    def __init__(self, engine: LakeEngine | None, wait_s: float = WAIT_SECONDS) -> None:
        self._engine = engine
        self._wait = wait_s

    def breakdown(self, plugin_id: str, params: Mapping[str, str]) -> Answer:
        return self._ask(plugin_id, _read(breakdown_of, params))

    def retention(self, plugin_id: str, params: Mapping[str, str]) -> Answer:
        return self._ask(plugin_id, _read(retention_of, params))

    def result(self, plugin_id: str, query_id: str) -> Answer:
        question, running = _decode(query_id)
        if self._lake().immediate:
            return self._ask(plugin_id, question)
        found = self._lake().fetch(running, plugin_id)
        if found is None:
            raise NotFound(f"No query {query_id!r} of plugin {plugin_id!r}")
        if isinstance(found, str):
            return 202, {"query_id": query_id, "status": "running"}
        return 200, question.body(found)

    def _ask(self, plugin_id: str, question: Breakdown | Retention) -> Answer:
        engine = self._lake()
        found = engine.run(question.statement(engine.dialect, plugin_id), self._wait)
        if isinstance(found, str):
            return 202, {"query_id": _encode(question, found), "status": "running"}
        return 200, question.body(found)

    def _lake(self) -> LakeEngine:
        if self._engine is None:
            raise Unavailable(
                "This stack has no lake configured (LAKE_DIR, or LAKE_WORKGROUP and LAKE_DATABASE)"
            )
        return self._engine


def _read(reader: Any, params: Mapping[str, str]) -> Any:
    try:
        return reader(dict(params))
    except BadQuestion as exc:
        raise ValidationFailed(str(exc), [{"field": exc.field, "message": str(exc)}]) from exc


def _encode(question: Breakdown | Retention, running: str) -> str:
    """The query id a caller gets: the engine's id and the question (to read the rows back)."""
    if isinstance(question, Breakdown):
        asked: dict[str, Any] = {"k": "b", "e": question.event, "b": question.by}
    else:
        asked = {"k": "r", "e": question.event, "p": question.period}
    asked.update(f=question.first, t=question.last, x=running)
    return base64.urlsafe_b64encode(json.dumps(asked, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(query_id: str) -> tuple[Breakdown | Retention, str]:
    try:
        asked = json.loads(base64.urlsafe_b64decode(query_id + "=" * (-len(query_id) % 4)))
        running = str(asked["x"])
        if asked["k"] == "b":
            return Breakdown(str(asked["e"]), str(asked["b"]), str(asked["f"]), str(asked["t"])), running
        first, last, event = str(asked["f"]), str(asked["t"]), asked.get("e")
        if asked["p"] == "week":
            return Retention(first, last, "week", event), running
        return Retention(first, last, "day", event), running
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise NotFound(f"No query {query_id!r}") from exc
