"""The local stack reads template.yaml: routes, tables and environments cannot drift from AWS."""

from __future__ import annotations

import base64
import gzip
import re
import tomllib

from devstack.local.apigw import compressed, match, proxy_event
from devstack.local.template import ROOT, Route, Template

TEMPLATE = Template.load()

CONTRACT_INGEST_ROUTES = {
    ("POST", "/api/analytics/track"),
    ("POST", "/api/events/track"),
    ("POST", "/api/save"),
    ("GET", "/api/analytics/track"),
    ("GET", "/api/events/track"),
    ("POST", "/v1/plugins/{plugin_id}/track"),
    ("POST", "/v1/track"),
    ("POST", "/v1/identify"),
    ("POST", "/v1/batch"),
}


def test_every_ingest_route_of_the_contract_goes_to_the_ingest_function() -> None:
    routes = {(r.method, r.path): r.function for r in TEMPLATE.routes()}
    assert {route: routes.get(route) for route in CONTRACT_INGEST_ROUTES} == dict.fromkeys(
        CONTRACT_INGEST_ROUTES, "IngestFunction"
    )


def test_config_and_health_routes_go_to_the_query_function() -> None:
    routes = {(r.method, r.path): r.function for r in TEMPLATE.routes()}
    for route in [
        ("PUT", "/v1/plugins/{plugin_id}/config"),
        ("GET", "/v1/plugins/{plugin_id}/config"),
        ("GET", "/health"),
    ]:
        assert routes[route] == "QueryFunction"


def test_literal_segments_win_over_variables() -> None:
    routes = [Route.of("GET", "/v1/{thing}", "Var"), Route.of("GET", "/v1/track", "Literal")]
    ordered = sorted(routes, key=lambda r: r.variables)
    found = match(ordered, "GET", "/v1/track")
    assert found is not None
    assert found[0].function == "Literal"


def test_path_parameters_are_decoded_but_the_path_is_kept_as_sent() -> None:
    found = match(TEMPLATE.routes(), "POST", "/v1/plugins/my%20plugin/track")
    assert found is not None
    route, params = found
    event = proxy_event(
        method="POST",
        raw_path="/v1/plugins/my%20plugin/track",
        query="a=1&a=2&b=",
        headers=[("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "2.2.2.2")],
        body=b"\xff\x00",
        source_ip="198.51.100.1",
        route=route,
        path_parameters=params,
        stage="local",
    )
    assert event["path"] == "/v1/plugins/my%20plugin/track"
    assert event["resource"] == "/v1/plugins/{plugin_id}/track"
    assert event["pathParameters"] == {"plugin_id": "my plugin"}
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    assert event["multiValueHeaders"]["X-Forwarded-For"] == ["1.1.1.1", "2.2.2.2"]
    assert event["requestContext"]["identity"]["sourceIp"] == "198.51.100.1"
    assert (event["isBase64Encoded"], base64.b64decode(event["body"])) == (True, b"\xff\x00")


def test_tables_are_created_as_the_template_defines_them() -> None:
    tables = TEMPLATE.table_definitions()
    events = tables["EventsTable"]["create"]
    assert events["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert [k["AttributeName"] for k in events["KeySchema"]] == ["pk", "sk"]
    assert tables["EventsTable"]["ttl"] == {"AttributeName": "expires_at", "Enabled": True}
    assert "ControlTable" in tables


def test_aws_parts_that_do_not_exist_locally_resolve_to_nothing() -> None:
    # The admin key's secret: unset locally, so the functions take TRACKING_ADMIN_KEY.
    query = Template.load().functions()["QueryFunction"]
    assert query.environment["ADMIN_KEY_SECRET_ARN"] == ""
    assert query.environment["AGGREGATES_TABLE"] == "AggregatesTable"


def test_function_environment_resolves_tables_and_parameters() -> None:
    ingest = Template.load({"RateLimitPerMinute": "7"}).functions()["IngestFunction"]
    assert ingest.environment["EVENTS_TABLE"] == "EventsTable"
    assert ingest.environment["RATE_LIMIT_PER_MINUTE"] == "7"
    assert ingest.code_dir == ROOT / "functions" / "ingest"
    assert (ingest.module, ingest.handler) == ("app", "lambda_handler")


def test_layer_requirements_match_the_project_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    layer = [
        line.strip()
        for line in (ROOT / "layers" / "shared" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # boto3 ships with the Lambda runtime; everything else the layer installs must be what we test with.
    assert sorted(layer) == sorted(d for d in project if not re.match(r"boto3\b", d))


def test_the_local_api_gzips_as_the_templates_minimum_compression_size_says() -> None:
    minimum = Template.load().minimum_compression()
    assert minimum == 1024
    big, small = b"x" * minimum, b"x" * (minimum - 1)
    headers, payload = compressed({"Content-Type": "text/javascript"}, big, "gzip, deflate, br", minimum)
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(payload) == big
    assert compressed({}, small, "gzip", minimum) == ({}, small)  # too small
    assert compressed({}, big, "identity", minimum) == ({}, big)  # not asked for
    assert compressed({}, big, None, minimum) == ({}, big)
    encoded = {"Content-Encoding": "br"}
    assert compressed(encoded, big, "gzip", minimum) == (encoded, big)  # the function encoded it itself
