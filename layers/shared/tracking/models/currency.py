"""Static conversion of purchase values to the base currency (EUR), as the widget's docs publish it."""

from __future__ import annotations

from decimal import Decimal

BASE_CURRENCY = "EUR"

# Rates to EUR, exactly as published; an unknown currency is never guessed.
RATES_TO_EUR: dict[str, Decimal] = {
    code: Decimal(rate)
    for code, rate in {
        "EUR": "1.0",
        "USD": "0.92",
        "GBP": "1.17",
        "CHF": "1.05",
        "DKK": "0.134",
        "SEK": "0.088",
        "NOK": "0.086",
        "CZK": "0.041",
        "PLN": "0.23",
        "BGN": "0.51",
        "RON": "0.20",
        "HRK": "0.133",
        "HUF": "0.0026",
        "RSD": "0.0085",
        "UAH": "0.024",
    }.items()
}

# Money in the base currency is kept in cents (DynamoDB numbers are exact decimals).
CENTS = Decimal("0.01")


def rate_to_base(currency: str) -> Decimal | None:
    return RATES_TO_EUR.get(currency.upper())
