"""Test-wide environment: dummy AWS credentials, no local endpoint (moto intercepts), and the sample
events' admin key. Set before anything creates a botocore session."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "events"
SAMPLE_ADMIN_KEY = "local-admin-key-for-sample-events-0001"

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "event-tracking",
        "POWERTOOLS_METRICS_NAMESPACE": "EventTracking",
        "TRACKING_ADMIN_KEY": SAMPLE_ADMIN_KEY,
    }
)
os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("RATE_LIMIT_PER_MINUTE", None)


def sample_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    return event


# The dashboard key events/key-revoke.json revokes (its key_id is a prefix of this key's hash).
SAMPLE_DASHBOARD_KEY = "dk_sample-dashboard-key-for-the-revoke-sample-0001"


def seed_sample_key(dynamodb: Any, table: str = "ControlTable") -> None:
    """Store the key events/key-revoke.json revokes, as POST .../keys would have."""
    from tracking.models.control import DashboardKey  # noqa: PLC0415 (after the environment is set)
    from tracking.query.auth import key_hash  # noqa: PLC0415
    from tracking.storage.control import ControlStore  # noqa: PLC0415

    key = DashboardKey("demo-plugin", key_hash(SAMPLE_DASHBOARD_KEY), 1764016800000, "sample", last4="0001")
    ControlStore(dynamodb, table).save_dashboard_key(key)


SAMPLE_REPLAY_ID = "5a3c0e1f9b2d4c6e8f0a1b2c3d4e5f60"


def seed_sample_replay(dynamodb: Any, table: str = "DeliveriesTable") -> None:
    """Record the replay events/destination-replay-get.json reads and events/replay-sqs.json runs, as
    POST .../replay would have (its id is random there)."""
    from tracking.destinations.models import DestinationRef, Replay  # noqa: PLC0415
    from tracking.storage.replays import ReplayStore  # noqa: PLC0415

    ref = DestinationRef("demo-plugin", "crm-webhook")
    now = int(time.time() * 1000)  # its record expires 30 days on: one born expired, TTL would remove
    ReplayStore(dynamodb, table).create(Replay(ref, SAMPLE_REPLAY_ID, "2025-11-24", "2025-11-24", now))
