"""Dashboard keys as API Gateway API keys: the deployed API requires a key the gateway knows on
dashboard routes and meters each key through the usage plan, so every key created here is also
registered there (with the same value). Locally there is no gateway and nothing to register."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import botocore.session

from tracking.storage.dynamo import CLIENT_CONFIG, storage_errors


class GatewayKeys:
    def __init__(self, usage_plan_id: str) -> None:
        self._usage_plan_id = usage_plan_id

    @cached_property
    def _client(self) -> Any:
        # Created on first use: only the rare key-creating request pays for it, not every cold start.
        return botocore.session.get_session().create_client("apigateway", config=CLIENT_CONFIG)

    def register(self, key: str, plugin_id: str, label: str) -> str:
        """Add the key to the usage plan; answers the gateway's id of it."""
        with storage_errors("register key"):
            created = self._client.create_api_key(
                name=f"dashboard-{plugin_id}"[:128],
                description=(label or f"Dashboard key of {plugin_id}")[:125],
                enabled=True,
                value=key,
                tags={"plugin": plugin_id[:256]},
            )
            try:
                self._client.create_usage_plan_key(
                    usagePlanId=self._usage_plan_id, keyId=created["id"], keyType="API_KEY"
                )
            except Exception:
                self.unregister(created["id"])
                raise
        return str(created["id"])

    def unregister(self, key_id: str) -> None:
        with storage_errors("unregister key"):
            self._client.delete_api_key(apiKey=key_id)
