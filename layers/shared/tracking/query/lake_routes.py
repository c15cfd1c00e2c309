"""The routes answered from the lake: a breakdown of one event by a field, retention by cohort, and a
query's answer once ready (``tracking.query.lake``). A dashboard key or the admin key, as every read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tracking.http import (
    APIGatewayRestResolver,
    QueryParam,
    Response,
    header,
    json_response,
    operation,
    path_param,
)
from tracking.models.responses import Reply
from tracking.query.lake import LakeQuestions
from tracking.query.replies import BreakdownReply, QueryRunning, RetentionReply
from tracking.query.service import QueryService

DAYS = (
    QueryParam("from", "First day (UTC; default: 29 days before to)", {"type": "string", "format": "date"}),
    QueryParam("to", "Last day (UTC; default: today)", {"type": "string", "format": "date"}),
)
BREAKDOWN_QUERY = (
    QueryParam("event", "The event's name", required=True),
    QueryParam(
        "by",
        "browser, os, device, utm_source, utm_medium, utm_campaign, url, referrer, type; properties.<path>",
        required=True,
    ),
    *DAYS,
    QueryParam("bots", "include: count bot events too", {"type": "string", "enum": ["include", "exclude"]}),
)
RETENTION_QUERY = (
    QueryParam("event", "Only this event makes a cohort and a return (default: any event)"),
    *DAYS,
    QueryParam("period", "day or week", {"type": "string", "enum": ["day", "week"]}),
)
RUNNING = {202: QueryRunning}


QUESTIONS = (
    ("breakdown", "Events and users by a field's values, from the lake", BREAKDOWN_QUERY, BreakdownReply),
    (
        "retention",
        "Cohorts by first period, and who came back, from the lake",
        RETENTION_QUERY,
        RetentionReply,
    ),
)


def lake_routes(app: APIGatewayRestResolver, service: QueryService, lake: LakeQuestions) -> None:
    def reader(plugin_id: str) -> str:
        return service.reader(header(app, "X-Api-Key"), path_param(plugin_id))

    def answer(found: tuple[int, dict[str, Any]], reply: type[Reply] | None = None) -> Response[str]:
        status, body = found
        if status == 200 and reply is not None:
            return json_response(status, reply.model_validate(body))
        return json_response(status, body)

    def route(name: str, reply: type[Reply]) -> Callable[[str], Response[str]]:
        def question(plugin_id: str) -> Response[str]:
            ask: Callable[[str, Mapping[str, str]], tuple[int, dict[str, Any]]] = getattr(lake, name)
            return answer(ask(reader(plugin_id), app.current_event.query_string_parameters), reply)

        question.__name__ = f"get_{name}"
        return question

    for name, summary, query, reply in QUESTIONS:
        app.get(
            f"/v1/plugins/<plugin_id>/{name}",
            **operation(summary, "dashboard", api_key=True, query=query, reply=reply, also=RUNNING),
        )(route(name, reply))

    @app.get(
        "/v1/plugins/<plugin_id>/queries/<query_id>",
        **operation(
            "A lake query's answer once ready (the body breakdown or retention would have given)",
            "dashboard",
            api_key=True,
            reply="json",
            also=RUNNING,
        ),
    )
    def get_query(plugin_id: str, query_id: str) -> Response[str]:
        return answer(lake.result(reader(plugin_id), path_param(query_id)))
