"""Ingest: the HTTP routes of the three dialects, their normalization into canonical events, the
per-IP rate limit and the config cache; what the ingest function runs."""
