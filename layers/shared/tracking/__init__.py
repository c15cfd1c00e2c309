"""Shared domain package of the event-tracking service (shipped as the Lambda layer).

Handlers in ``functions/`` adapt AWS events to this package; only ``tracking.storage`` talks to AWS.
"""

__version__ = "0.1.0"
