"""Ecommerce normalization shared by the dialects: product lines, totals in EUR, semantic roles.

A widget ``purchase`` and a Segment ``Order Completed`` both end up as canonical items with a
``total_value_base`` in EUR, so revenue is comparable whatever sent it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from tracking.models.canonical import MAX_AMOUNT, Commerce, Item
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


def as_amount(raw: Any) -> Decimal | None:
    """A finite money amount from a JSON number or numeric string; None for anything else."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, (int, float, Decimal)):
        text = str(raw)
    elif isinstance(raw, str) and len(raw) <= 40:
        text = raw.strip()
    else:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
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
        products: list[Any] = [properties]
    else:
        raw_products = properties.get("products")
        products = raw_products[:200] if isinstance(raw_products, list) else []
    items = []
    for product in products:
        if not isinstance(product, Mapping):
            continue
        raw_id = product.get("product_id", product.get("sku", product.get("id")))
        items.append(
            Item(
                item_id=str(raw_id)[:128] if isinstance(raw_id, (str, int)) and raw_id != "" else None,
                value=as_amount(product.get("price")),
                quantity=as_quantity(product.get("quantity")),
                currency=as_currency(product.get("currency")) or order_currency,
            )
        )
    return items


def segment_order_total(properties: Mapping[str, Any], default_currency: str) -> Decimal | None:
    """An order's value in EUR when it lists no priced products: ``revenue``, else ``total``, else
    ``value`` (Segment's order properties, in that order of preference)."""
    currency = as_currency(properties.get("currency")) or default_currency
    for name in ("revenue", "total", "value"):
        amount = as_amount(properties.get(name))
        if amount is not None:
            return total_in_base([Item(value=amount, currency=currency)], where=f"properties.{name}")
    return None
