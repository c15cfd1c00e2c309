"""The chatbot widget's event types, in funnel order where they have one, with the names a dashboard
shows for a chatbot that never published a config (it still has rows, users and a CSV)."""

from __future__ import annotations

from tracking.models.config import PluginConfig, PublishedConfig, TrackedKey, TrackingSection

# (event type, English name, French name)
WIDGET_EVENTS: tuple[tuple[str, str, str], ...] = (
    ("visitor", "Visits", "Visites"),
    ("popup_displayed", "Pop-ups displayed", "Pop-ups affichées"),
    ("popup_opened", "Pop-ups opened", "Pop-ups ouvertes"),
    ("bot_open", "Bot opened", "Bot ouvert"),
    ("convo_started", "Conversations started", "Conversations commencées"),
    ("message_sent", "Messages sent", "Messages envoyés"),
    ("message_like", "Messages liked", "Messages appréciés"),
    ("message_dislike", "Messages disliked", "Messages non appréciés"),
    ("click_through", "Click-throughs", "Clics vers le site"),
    ("added_to_cart", "Added to cart", "Ajouts au panier"),
    ("go_to_cart", "Went to cart", "Passages au panier"),
    ("purchase", "Purchases", "Achats"),
    ("error", "Errors", "Erreurs"),
)
EVENT_TYPES = frozenset(event for event, _, _ in WIDGET_EVENTS)


def widget_defaults(plugin_id: str) -> PublishedConfig:
    """What a chatbot with only widget events reads as: each event type counted, as a column."""
    events = tuple(
        TrackedKey(key=event, name={"en": english, "fr": french}, aggregations=("increment",))
        for event, english, french in WIDGET_EVENTS
    )
    return PublishedConfig(
        plugin_id=plugin_id,
        config=PluginConfig(tracking=TrackingSection(events=events)),
        version=1,
        published_at=0,
    )
