"""In-memory fakes of the services' ports, with the DynamoDB semantics the services rely on: items
built by storage's own item builders (so sizes and round trips are the real ones), conditional writes
that fail the way DynamoDB's do, a stream that, like DynamoDB's, has no record for an overwrite that
changes nothing, and write units counted per item size. ``test_fakes_match_moto.py`` holds them to
the real stores on the same sequences; the scale simulation drives them."""
