"""What a query route asks, as typed requests: read from the query string once, in the route layer,
and handed to the services. What cannot be a request is a 422 here, in the order the checks always
ran: an aggregation the plugin's key does not list (so a request naming one is built with the
config), then the limit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from tracking.models.config import Aggregation, PublishedConfig
from tracking.models.people import PeopleLists
from tracking.query.paging import DEFAULT_LIMIT, parse_limit
from tracking.query.rows import chosen_aggregations

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


def _chosen(params: Mapping[str, str], published: PublishedConfig) -> dict[str, Aggregation]:
    """``aggregation.<key>=<name>``: another of the key's listed aggregations (422 otherwise)."""
    asked = {
        name.removeprefix(AGGREGATION_PREFIX): value
        for name, value in params.items()
        if name.startswith(AGGREGATION_PREFIX)
    }
    return chosen_aggregations(published, asked)


class PageQuery(_Request):
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, str]) -> PageQuery:
        return cls(limit=parse_limit(params.get("limit")), cursor=params.get("cursor"))


class RowsQuery(PageQuery):
    chosen: dict[str, Aggregation] = {}

    @classmethod
    def read(cls, params: Mapping[str, str], published: PublishedConfig) -> RowsQuery:
        chosen = _chosen(params, published)
        return cls(limit=parse_limit(params.get("limit")), cursor=params.get("cursor"), chosen=chosen)


class UserQuery(_Request):
    cursor: str | None = None
    chosen: dict[str, Aggregation] = {}

    @classmethod
    def read(cls, params: Mapping[str, str], published: PublishedConfig) -> UserQuery:
        return cls(chosen=_chosen(params, published), cursor=params.get("cursor"))


class ExportQuery(UserQuery):
    lang: str | None = None

    @classmethod
    def read(cls, params: Mapping[str, str], published: PublishedConfig) -> ExportQuery:
        return cls(chosen=_chosen(params, published), cursor=params.get("cursor"), lang=params.get("lang"))


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
