"""Value types every stage and storage share: the canonical event, plugin configs, aggregates, what
the control table holds, the failures storage reports, and the JSON replies of the API."""
