"""Events out: a plugin's destinations (webhooks and Segment-spec APIs), what each is sent, how the
address is checked, and the delivery that retries until a destination has it (shared/API.md,
"Destinations: events out")."""
