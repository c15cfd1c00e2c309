"""The browser SDK as the query function serves it (``GET /sdk/tracking.js``): the repository's
file, as JavaScript a page on any origin may import, with no key asked."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import api_event
from tests.integration.conftest import Invoke

SOURCE = Path(__file__).resolve().parents[2] / "layers" / "shared" / "tracking" / "sdk" / "tracking.js"


def test_the_sdk_is_served_as_a_module_any_origin_imports(query: Invoke) -> None:
    answer = query(api_event("GET", "/sdk/tracking.js", headers={"Origin": "https://plugin.example.com"}))
    assert answer["statusCode"] == 200
    headers = {name.lower(): values for name, values in answer["multiValueHeaders"].items()}
    assert headers["content-type"] == ["text/javascript; charset=utf-8"]
    assert headers["access-control-allow-origin"] == ["*"]
    assert answer["body"] == SOURCE.read_text(encoding="utf-8")
    assert "export const Tracking" in answer["body"]
