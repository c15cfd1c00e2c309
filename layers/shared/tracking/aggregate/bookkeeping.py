"""What a batch leaves besides its items: the chatbots without a config it lists, the trait names it
registers for the CSV's columns, and its refused links, recorded as rejections. None of it fails a
record: each is logged when it cannot be written, and done again by a later batch."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from tracking.aggregate.batch import STATE_CACHE_MAX
from tracking.aggregate.fold import StreamRecord
from tracking.aggregate.ports import Configs, RejectionSink
from tracking.aggregate.profiles import Link
from tracking.json_text import dumps_compact
from tracking.models.config import PublishedConfig
from tracking.models.people import (
    ANONYMOUS_IDS_MAX,
    LINK_DEPTH_MAX,
    TRAIT_COLUMNS_MAX,
    PeopleLists,
    ProfileState,
)
from tracking.models.rejections import Rejection, RejectionRecord, cut_payload

logger = logging.getLogger(__name__)


class Bookkeeping:
    def __init__(
        self, configs: Configs, rejections: RejectionSink, clock: Callable[[], float] = time.time
    ) -> None:
        self._configs = configs
        self._rejections = rejections
        self._clock = clock
        self._registered: set[str] = set()  # plugins without a config this container has listed

    def register_unconfigured(
        self, records: Sequence[StreamRecord], configs: Mapping[str, PublishedConfig | None]
    ) -> None:
        """A chatbot that sends widget events and never published a config is listed with the other
        plugins (once per container: the write is conditional, so repeating it costs one write)."""
        for record in records:
            event = record.event
            if event is None or event.dialect != "widget" or configs.get(event.plugin_id) is not None:
                continue
            if event.plugin_id in self._registered:
                continue
            try:
                self._configs.register_plugin(event.plugin_id, int(self._clock() * 1000))
                if len(self._registered) >= STATE_CACHE_MAX:
                    self._registered.clear()  # a flood of chatbot ids costs a write each, not memory
                self._registered.add(event.plugin_id)
            except Exception as exc:
                logger.warning("plugin not listed", extra={"plugin_id": event.plugin_id, "error": repr(exc)})

    def register_traits(self, written: Sequence[ProfileState], people: Mapping[str, PeopleLists]) -> None:
        """Trait names a plugin's profiles hold, for its CSV's columns: one write when a new one appears."""
        for plugin_id, known in people.items():
            names = {name for state in written if state.plugin_id == plugin_id for name in state.traits}
            new = sorted(names - set(known.trait_names))[: max(0, TRAIT_COLUMNS_MAX - len(known.trait_names))]
            if new:
                try:
                    self._configs.add_trait_names(plugin_id, new)
                except Exception as exc:
                    logger.warning("trait names not registered", extra={"error": repr(exc)})

    def record_refused_links(self, links: Sequence[Link]) -> None:
        """Links that do not hold are rejections of their calls, recorded for the plugin: one record per
        plugin and batch, however many (its entries are capped, its counts are not)."""
        by_plugin: dict[str, list[Link]] = {}
        for link in links:
            by_plugin.setdefault(link.plugin_id, []).append(link)
        for plugin_id, refused in by_plugin.items():
            record = RejectionRecord(
                plugin_id=plugin_id,
                at=max(link.event.received_at for link in refused),
                dialect=refused[0].event.dialect,
                rejections=tuple(_refusal(link) for link in refused),
                counts={"VALIDATION": len(refused)},
            )
            try:
                self._rejections.record(record)
            except Exception as exc:
                logger.warning(
                    "refused links not recorded", extra={"error": repr(exc), "links": len(refused)}
                )


def _refusal(link: Link) -> Rejection:
    field = "previousId" if link.event.kind == "alias" else "anonymousId"
    return Rejection(
        code="VALIDATION",
        message="The link was refused",
        details=(
            {
                "field": field,
                "message": f"{link.anonymous!r} has been a user, is already part of another user, or "
                f"linking it to {link.user!r} would make a circle or a person over "
                f"{LINK_DEPTH_MAX} links deep or {ANONYMOUS_IDS_MAX} ids wide",
            },
        ),
        payload=cut_payload(
            dumps_compact({"type": link.event.kind, "userId": link.user, field: link.anonymous})
        ),
        message_id=link.event.message_id,
    )
