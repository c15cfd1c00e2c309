"""The control table, whole: its plugins (configs, people lists, write keys), dashboard keys and shared
budgets, for callers that need more than one part (the query service, tests, the local tools). Each
part is its own store: :mod:`plugins`, :mod:`dashboard_keys`, :mod:`budgets`."""

from __future__ import annotations

from typing import Any

from tracking.storage.budgets import BudgetStore
from tracking.storage.dashboard_keys import DashboardKeyStore
from tracking.storage.plugins import UNCONFIGURED_MAX, PluginStore

__all__ = ["UNCONFIGURED_MAX", "BudgetStore", "ControlStore", "DashboardKeyStore", "PluginStore"]


class ControlStore(PluginStore, DashboardKeyStore, BudgetStore):
    def __init__(self, client: Any, table: str, *, unconfigured_max: int = UNCONFIGURED_MAX) -> None:
        PluginStore.__init__(self, client, table, unconfigured_max=unconfigured_max)
