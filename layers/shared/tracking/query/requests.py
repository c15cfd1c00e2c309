"""What a query route asks, as typed requests: read from the query string once, in the route layer,
and handed to the services (a limit that is not one is a 422 here; what depends on the plugin's
config, such as an aggregation it does not list, is judged by the service)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from tracking.models.config import PublishedConfig
from tracking.models.people import PeopleLists
from tracking.query.paging import DEFAULT_LIMIT, parse_limit

AGGREGATION_PREFIX = "aggregation."


@dataclass(frozen=True, slots=True)
class Reading:
    """A plugin a caller may read, with its config (a chatbot without one reads with the widget's
    columns) and its people lists."""

    plugin_id: str
    published: PublishedConfig
    people_lists: PeopleLists = field(default_factory=PeopleLists)


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True)


def _aggregations(params: Mapping[str, str]) -> dict[str, str]:
    """``aggregation.<key>=<name>`` pairs, as asked (whether the key lists it is the service's call)."""
    return {
        name.removeprefix(AGGREGATION_PREFIX): value
        for name, value in params.items()
        if name.startswith(AGGREGATION_PREFIX)
    }


class PageQuery(_Request):
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, str]) -> PageQuery:
        return cls(limit=parse_limit(params.get("limit")), cursor=params.get("cursor"))


class RowsQuery(PageQuery):
    aggregations: dict[str, str] = {}

    @classmethod
    def of(cls, params: Mapping[str, str]) -> RowsQuery:
        return cls(
            limit=parse_limit(params.get("limit")),
            cursor=params.get("cursor"),
            aggregations=_aggregations(params),
        )


class UserQuery(_Request):
    cursor: str | None = None
    aggregations: dict[str, str] = {}

    @classmethod
    def of(cls, params: Mapping[str, str]) -> UserQuery:
        return cls(cursor=params.get("cursor"), aggregations=_aggregations(params))


class ExportQuery(UserQuery):
    lang: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, str]) -> ExportQuery:
        return cls(cursor=params.get("cursor"), aggregations=_aggregations(params), lang=params.get("lang"))


class DaysQuery(_Request):
    """``from``..``to`` (UTC days, checked against the range each answer allows)."""

    first: str | None = None
    last: str | None = None


class SeriesQuery(DaysQuery):
    keys: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, str]) -> SeriesQuery:
        return cls(keys=params.get("keys"), first=params.get("from"), last=params.get("to"))


class SummaryQuery(DaysQuery):
    chatbot_id: str = ""

    @classmethod
    def of(cls, params: Mapping[str, str]) -> SummaryQuery:
        return cls(chatbot_id=params.get("chatbot_id", ""), first=params.get("from"), last=params.get("to"))
