"""The deployed admin key read from its secret: cached, re-read when a key does not match (so a rotated
key works at once), and a flood of wrong keys costs at most one read per 30 seconds."""

from __future__ import annotations

from typing import Any

import pytest

from tracking.models.storage_failures import StorageUnavailable
from tracking.storage.secrets import AdminKeySecret


class FakeSecrets:
    """What Powertools calls on a Secrets Manager client, counted."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.reads = 0
        self.fail = False

    def get_secret_value(self, **kwargs: Any) -> dict[str, str]:
        self.reads += 1
        if self.fail:
            raise RuntimeError("Secrets Manager is unreachable")
        return {"SecretString": self.value}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def secret(client: FakeSecrets, clock: Clock) -> AdminKeySecret:
    return AdminKeySecret(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:admin", client=client, clock=clock
    )


def test_a_flood_of_wrong_keys_reads_the_secret_at_most_once_per_30_seconds() -> None:
    client, clock = FakeSecrets("theRealAdminKey0123456789"), Clock()
    admin = secret(client, clock)
    assert not any(admin.matches(f"wrong-key-{n}") for n in range(500))
    assert client.reads == 2  # the first read, and one re-read in case the key was rotated
    clock.now += 31
    assert not admin.matches("wrong-key-again")
    assert client.reads == 3
    assert admin.matches("theRealAdminKey0123456789")
    assert client.reads == 3  # the right key is answered from the cache


def test_a_rotated_key_works_at_once_and_the_old_one_stops() -> None:
    client, clock = FakeSecrets("firstKey0123456789abcdef"), Clock()
    admin = secret(client, clock)
    assert admin.matches("firstKey0123456789abcdef")
    client.value = "secondKey0123456789abcdef"
    assert admin.matches("secondKey0123456789abcdef")
    assert not admin.matches("firstKey0123456789abcdef")


def test_an_unreadable_secret_is_a_retry_later_never_a_wrong_key() -> None:
    client, clock = FakeSecrets("k"), Clock()
    client.fail = True
    with pytest.raises(StorageUnavailable):
        secret(client, clock).matches("anything")
