"""Ecommerce normalization shared by the dialects: product lines, totals in EUR, semantic roles
(Segment's ecommerce and A/B specs).

A widget ``purchase`` and a Segment ``Order Completed`` both end up as canonical items with a
``total_value_base`` in EUR, so revenue is comparable whatever sent it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from tracking.api_errors import ValidationFailed
from tracking.models.canonical import MAX_AMOUNT, AbGroup, Commerce, Item, number_problem
from tracking.models.currency import BASE_CURRENCY, CENTS, rate_to_base

logger = logging.getLogger(__name__)

# Segment's ecommerce spec (v2) event names and what they mean here.
SEGMENT_COMMERCE: dict[str, Commerce] = {
    "Product Viewed": "product_viewed",
    "Product Clicked": "product_clicked",
    "Product Added": "add_to_cart",
    "Product Removed": "remove_from_cart",
    "Cart Viewed": "cart_viewed",
    "Checkout Started": "checkout",
    "Order Completed": "purchase",
    "Order Updated": "order_updated",
    "Order Refunded": "refund",
    "Order Cancelled": "cancel",
}
# Segment events whose properties describe one product rather than a list of ``products``.
SEGMENT_SINGLE_PRODUCT = frozenset({"product_viewed", "product_clicked", "add_to_cart", "remove_from_cart"})

WIDGET_COMMERCE: dict[str, Commerce] = {"added_to_cart": "add_to_cart", "purchase": "purchase"}


def as_amount(raw: Any, field: str | None = None) -> Decimal | None:
    """A finite money amount from a JSON number or numeric string; None for anything else (properties
    are free-form). A numeric string no table could hold exactly is a 422 naming ``field``, as the same
    number sent as a JSON number is."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, (int, float, Decimal)):
        text = str(raw)
    elif isinstance(raw, str) and len(raw) <= 64:
        text = raw.strip()
    else:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    problem = number_problem(text) if amount.is_finite() else None
    if problem is not None:
        if field is None:
            return None
        raise ValidationFailed(
            "A number cannot be stored", [{"field": field, "message": f"cannot be stored exactly: {problem}"}]
        )
    if not amount.is_finite() or abs(amount) >= MAX_AMOUNT:
        return None
    return amount


def as_quantity(raw: Any) -> int:
    """Quantity of a Segment product: a positive whole number, else 1 (the spec's default)."""
    amount = as_amount(raw)
    if amount is None or amount != amount.to_integral_value() or amount < 1 or amount > 1_000_000:
        return 1
    return int(amount)


def as_currency(raw: Any) -> str | None:
    return raw.strip().upper() if isinstance(raw, str) and 0 < len(raw.strip()) <= 3 else None


def total_in_base(items: Iterable[Item], *, where: str) -> Decimal | None:
    """Sum of value x quantity x rate in EUR; None if no item has a value or a currency is unknown."""
    total = Decimal(0)
    priced = False
    for item in items:
        if item.value is None:
            continue
        priced = True
        rate = rate_to_base(item.currency or BASE_CURRENCY)
        if rate is None:
            logger.warning(
                "unknown currency, total_value_base left null",
                extra={"currency": item.currency, "where": where},
            )
            return None
        total += item.value * item.quantity * rate
    return total.quantize(CENTS) if priced else None


def segment_items(properties: Mapping[str, Any], commerce: Commerce, default_currency: str) -> list[Item]:
    """Product lines of a Segment ecommerce event, leniently read (properties are free-form JSON)."""
    order_currency = as_currency(properties.get("currency")) or default_currency
    if commerce in SEGMENT_SINGLE_PRODUCT:
        products: list[tuple[str, Any]] = [("properties", properties)]
    else:
        raw_products = properties.get("products")
        listed = raw_products[:200] if isinstance(raw_products, list) else []
        products = [(f"properties.products[{index}]", product) for index, product in enumerate(listed)]
    items = []
    for where, product in products:
        if not isinstance(product, Mapping):
            continue
        raw_id = product.get("product_id", product.get("sku", product.get("id")))
        items.append(
            Item(
                item_id=str(raw_id)[:128] if isinstance(raw_id, (str, int)) and raw_id != "" else None,
                value=as_amount(product.get("price"), f"{where}.price"),
                quantity=as_quantity(product.get("quantity")),
                currency=as_currency(product.get("currency")) or order_currency,
            )
        )
    return items


def segment_order_total(
    properties: Mapping[str, Any], items: Iterable[Item], default_currency: str
) -> Decimal | None:
    """An order's value in EUR: its ``revenue``, else its ``total``, else the sum of its priced
    products, else its ``value`` (the contract's order of preference)."""
    currency = as_currency(properties.get("currency")) or default_currency
    amounts = {name: as_amount(properties.get(name), f"properties.{name}") for name in ("revenue", "total")}
    for name, amount in amounts.items():
        if amount is not None:
            return total_in_base([Item(value=amount, currency=currency)], where=f"properties.{name}")
    priced = [item for item in items if item.value is not None]
    if priced:
        return total_in_base(priced, where="properties.products")
    value = as_amount(properties.get("value"), "properties.value")
    if value is None:
        return None
    return total_in_base([Item(value=value, currency=currency)], where="properties.value")


# Segment's A/B spec: ``Experiment Viewed`` puts its user in a group; these variations are the control.
EXPERIMENT_VIEWED = "Experiment Viewed"
CONTROL_VARIATIONS = frozenset({"control", "0", "a"})


def experiment_group(event: str, properties: Mapping[str, Any]) -> AbGroup | None:
    """The A/B group a track call named ``event`` puts its user in: an ``Experiment Viewed``'s
    ``control`` when its variation (``variation_id`` or ``variation_name``) is ``control``, ``0`` or
    ``A``, else ``test``; None for any other call, or one without an ``experiment_id`` or variation."""
    if event != EXPERIMENT_VIEWED or properties.get("experiment_id") in (None, ""):
        return None
    variations = [
        str(raw).strip().lower()
        for raw in (properties.get("variation_id"), properties.get("variation_name"))
        if isinstance(raw, (str, int)) and not isinstance(raw, bool) and str(raw).strip()
    ]
    if not variations:
        return None
    return "control" if any(v in CONTROL_VARIATIONS for v in variations) else "test"
