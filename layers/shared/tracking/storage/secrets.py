"""The admin key as deployed: a Secrets Manager secret (the template generates it), read through
Powertools Parameters and cached, so no environment variable, template parameter or output holds it.

Rotation needs no redeploy (``aws secretsmanager put-secret-value``):

- the new key works at once: a key that does not match the cached value makes the container read the
  secret again (at most once per ``refetch_seconds``, so a flood of wrong keys costs few reads);
- the old key is refused by each warm container at the latest when its cached copy expires
  (``max_age``, 300 s by default) or as soon as that container has seen the new key.

Only requests presenting a key that is not a dashboard key read it: the Powertools module and its
Secrets Manager client are loaded on the first of them, not at cold start.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from typing import Any

from tracking.models.storage_failures import StorageUnavailable
from tracking.storage.dynamo import aws_client


class AdminKeySecret:
    def __init__(
        self,
        secret_id: str,
        *,
        max_age: int = 300,
        refetch_seconds: float = 30.0,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret_id = secret_id
        self._max_age = max_age
        self._refetch_seconds = refetch_seconds
        self._client = client
        self._clock = clock
        self._provider: Any = None
        self._last_refetch: float | None = None
        self._lock = threading.Lock()

    def matches(self, presented: str) -> bool:
        if self._same(presented, self._value(force=False)):
            return True
        now = self._clock()
        with self._lock:
            if self._last_refetch is not None and now - self._last_refetch < self._refetch_seconds:
                return False
            self._last_refetch = now
        # Perhaps the key was rotated since this container read it.
        return self._same(presented, self._value(force=True))

    @staticmethod
    def _same(presented: str, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(presented.encode(), str(value).encode())

    def _value(self, *, force: bool) -> str | None:
        from aws_lambda_powertools.utilities.parameters import GetParameterError  # noqa: PLC0415

        try:
            value = self._secrets().get(self._secret_id, max_age=self._max_age, force_fetch=force)
        except GetParameterError as exc:
            # The key cannot be checked: the caller may retry (503), it is not told its key is wrong.
            raise StorageUnavailable("The admin key cannot be read now; retry later") from exc
        return value.strip() if isinstance(value, str) else None

    def _secrets(self) -> Any:
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider  # noqa: PLC0415

            client = self._client or aws_client("secretsmanager")
            self._provider = SecretsProvider(boto3_client=client)
        return self._provider
