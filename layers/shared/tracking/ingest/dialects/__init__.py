"""The three tracking dialects, each with the same two steps: ``parse(payload)`` validates the
request's own shape into its model, and ``to_canonical(request, plugin_id, config, info)``
normalizes it into :class:`~tracking.models.canonical.CanonicalEvent`\\ s."""
