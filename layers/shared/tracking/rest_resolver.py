"""Powertools' REST resolver without the rest of its package.

``aws_lambda_powertools.event_handler``'s ``__init__`` imports every resolver Powertools has: AppSync
(and asyncio with it), AppSync Events, Bedrock agents, VPC Lattice, ALB, HTTP. Our functions use the
REST API resolver only, and those imports cost about 25 ms of CPU on every cold start (measured in
the deployed layout, docs/PERFORMANCE.md). :func:`rest_resolver_only` registers the package without
running its ``__init__``, then imports ``api_gateway`` into it and gives the package the names that
module defines. Nothing is lost: asking the package for a submodule imports that submodule, and
asking it for any other name runs the package's own ``__init__`` then, once.

It must run before anything imports the package (``tracking/http.py`` calls it first); when the
package is already imported it does nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

PACKAGE = "aws_lambda_powertools.event_handler"
# What the package's __init__ takes from api_gateway.
REST_NAMES = (
    "ALBResolver",
    "APIGatewayHttpResolver",
    "ApiGatewayResolver",
    "APIGatewayRestResolver",
    "CORSConfig",
    "Response",
)


def rest_resolver_only() -> None:
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None:  # pragma: no cover - Powertools is a dependency
        return
    package = importlib.util.module_from_spec(spec)

    def __getattr__(name: str) -> Any:
        try:
            return importlib.import_module(f"{PACKAGE}.{name}")
        except ModuleNotFoundError:
            pass
        # A name only the full package defines: run its own __init__, now and once.
        del package.__dict__["__getattr__"]
        spec.loader.exec_module(package)  # type: ignore[union-attr]
        return package.__dict__[name]

    package.__dict__["__getattr__"] = __getattr__
    sys.modules[PACKAGE] = package
    api_gateway: ModuleType = importlib.import_module(f"{PACKAGE}.api_gateway")
    for name in REST_NAMES:
        package.__dict__.setdefault(name, getattr(api_gateway, name))
