"""Sends one batch through Segment's analytics-python 1.4 (the release that reads an error's top-level
``code`` and ``message`` and raises ``KeyError`` without them), then flushes and prints what its
``on_error`` was told, one JSON object. Run by tests/e2e/test_real_clients.py with the interpreter of
.venv-clients: python send_python14.py URL WRITE_KEY PREFIX."""

from __future__ import annotations

import json
import sys

import analytics  # analytics-python 1.4


def main(url: str, write_key: str, prefix: str) -> int:
    errors: list[dict[str, object]] = []

    def on_error(error: Exception, batch: object) -> None:
        errors.append(
            {
                "type": type(error).__name__,
                "status": getattr(error, "status", None),
                "code": getattr(error, "code", None),
            }
        )

    client = analytics.Client(write_key, host=url, on_error=on_error, max_retries=2, upload_interval=0.1)
    for n in range(3):
        client.track(f"{prefix}-user", "Old Library", {"n": n}, message_id=f"{prefix}-{n}")
    client.flush()
    client.join()
    print(json.dumps({"errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
