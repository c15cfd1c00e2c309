"""Pydantic models that cross a boundary: the canonical event and the published plugin config."""
