"""Sends every Segment-spec call type through one real Python library, as its users would, then
flushes and exits. Run by tests/e2e/test_real_clients.py: python send_python.py LIBRARY URL WRITE_KEY
GZIP PREFIX, where LIBRARY is segment, customerio or rudderstack and GZIP is on or off."""

from __future__ import annotations

import importlib
import json
import sys


def main(library: str, url: str, write_key: str, gzip: str, prefix: str) -> int:
    module = importlib.import_module(f"{library}.analytics")
    errors: list[str] = []
    client = module.Client(
        write_key,
        host=url,
        gzip=gzip == "on",
        max_retries=1,
        on_error=lambda error, batch: errors.append(f"{error}"),
    )
    user, anonymous = f"{prefix}-user", f"{prefix}-anon"
    client.identify(anonymous_id=anonymous, traits={"plan": "free"}, message_id=f"{prefix}-i0")
    client.track(
        anonymous_id=anonymous, event="Signed Up", properties={"value": "trial"}, message_id=f"{prefix}-t0"
    )
    client.identify(
        user,
        {"plan": "pro", "email": f"{prefix}@example.com"},
        anonymous_id=anonymous,
        message_id=f"{prefix}-i1",
    )
    client.track(user, "Signed Up", {"value": "paid"}, message_id=f"{prefix}-t1")
    client.track(user, "Signed Up", {"value": "paid"})  # the library's own messageId
    client.page(user, "Docs", "Getting started", {"path": "/docs"}, message_id=f"{prefix}-p1")
    client.screen(user, "App", "Settings", {"tab": "billing"}, message_id=f"{prefix}-s1")
    client.group(user, "acme", {"name": "Acme Inc"}, message_id=f"{prefix}-g1")
    client.alias(anonymous, user, message_id=f"{prefix}-a1")
    client.flush()
    # Two bad calls among good ones: the good ones are stored and the library is not told to retry.
    for n in range(9):
        client.track(user, "Batched", {"value": n}, message_id=f"{prefix}-b{n}")
    client.track(user, "x" * 300, {}, message_id=f"{prefix}-bad")
    client.track(user, "Paid", {"amount": 1e200}, message_id=f"{prefix}-huge")  # sent as 1e+200
    client.shutdown()
    print(json.dumps({"errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
