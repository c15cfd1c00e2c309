"""Queries and administration: API-key auth, plugin configs and keys, the dashboard read model and
its cells, the page and the OpenAPI document; what the query function runs."""
