"""Reads ``template.yaml``: tables, functions (handler, environment), API routes, stream mappings."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

_INTRINSICS = {
    "!Ref": "Ref",
    "!GetAtt": "Fn::GetAtt",
    "!Sub": "Fn::Sub",
    "!If": "Fn::If",
    "!Equals": "Fn::Equals",
    "!Not": "Fn::Not",
    "!And": "Fn::And",
    "!Or": "Fn::Or",
    "!Join": "Fn::Join",
    "!Select": "Fn::Select",
    "!Split": "Fn::Split",
    "!FindInMap": "Fn::FindInMap",
    "!GetAZs": "Fn::GetAZs",
    "!ImportValue": "Fn::ImportValue",
    "!Base64": "Fn::Base64",
    "!Cidr": "Fn::Cidr",
    "!Condition": "Condition",
}


@dataclass(frozen=True)
class GatewayReply:
    """An answer API Gateway gives itself (a gateway response), as a client receives it."""

    status: int
    headers: dict[str, str]
    body: str


_LOCAL_TYPES = frozenset({"AWS::DynamoDB::Table", "AWS::Serverless::Function", "AWS::SQS::Queue"})


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsic functions read as their long form."""


def _intrinsic(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    tag = "!" + suffix
    name = _INTRINSICS.get(tag, tag)
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_Loader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        loaded = yaml.load(handle, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    assert isinstance(loaded, dict)
    return loaded


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or ANY
    path: str  # as in the template: /v1/plugins/{plugin_id}/track
    function: str  # logical id
    pattern: re.Pattern[str] = field(compare=False)
    variables: int = 0

    @classmethod
    def of(cls, method: str, path: str, function: str) -> Route:
        regex, variables = "", 0
        for part in re.split(r"(\{[^}]+\})", path):
            if part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                greedy = name.endswith("+")
                name = name.rstrip("+")
                regex += f"(?P<{name}>.+)" if greedy else f"(?P<{name}>[^/]+)"
                variables += 1
            else:
                regex += re.escape(part)
        return cls(method.upper(), path, function, re.compile(f"^{regex}$"), variables)


@dataclass(frozen=True)
class StreamMapping:
    function: str
    table: str
    batch_size: int = 100
    batching_window_s: int = 0
    bisect_on_error: bool = False
    maximum_retry_attempts: int = -1
    report_batch_item_failures: bool = False
    starting_position: str = "TRIM_HORIZON"
    on_failure: str | None = None  # logical id of the on-failure destination
    tumbling_window_s: int = 0
    maximum_record_age_s: int = -1
    filter_patterns: tuple[dict[str, Any], ...] = ()
    kinesis: bool = False  # fed by the table's Kinesis data stream (its changes), not DynamoDB Streams


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_dir: Path
    module: str
    handler: str
    environment: dict[str, str]
    timeout_s: int
    memory_mb: int


class Template:
    def __init__(self, document: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> None:
        self.document = document
        self.resources: Mapping[str, Any] = document.get("Resources", {})
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in document.get("Parameters", {}).items()
        }
        self.parameters.update(parameters or {})

    @classmethod
    def load(cls, parameters: Mapping[str, str] | None = None, path: Path = TEMPLATE) -> Template:
        return cls(load_template(path), parameters)

    def of_type(self, kind: str) -> dict[str, Mapping[str, Any]]:
        return {name: res for name, res in self.resources.items() if res.get("Type") == kind}

    # -- values -----------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Intrinsics resolved the way the local stack names things: a table is its logical id."""
        if isinstance(value, Mapping) and len(value) == 1:
            ((name, arg),) = value.items()
            if name == "Ref":
                if arg in self.parameters:
                    return self.parameters[arg]
                if arg in self.resources:
                    # Tables, functions and queues exist locally under their logical id; the
                    # other parts (the admin key's secret, the WAF, KMS keys) do not exist at all.
                    return arg if self.resources[arg].get("Type") in _LOCAL_TYPES else ""
                if arg == "AWS::Region":
                    return "us-east-1"
                return arg
            if name == "Fn::GetAtt":
                resource, attribute = arg
                if attribute == "Arn":
                    return f"arn:aws:local:::{resource}"
                return f"{resource}.{attribute}"
            if name == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.resolve({"Ref": m.group(1)})), text)
            if name == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self.resolve(p)) for p in parts)
        if isinstance(value, Mapping):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    # -- tables -----------------------------------------------------------------------------------

    def table_definitions(self) -> dict[str, dict[str, Any]]:
        """CreateTable arguments of every table, named by logical id."""
        tables = {}
        for name, resource in self.of_type("AWS::DynamoDB::Table").items():
            props = self.resolve(resource.get("Properties", {}))
            create: dict[str, Any] = {
                "TableName": name,
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": "PAY_PER_REQUEST",
            }
            if "StreamSpecification" in props:
                create["StreamSpecification"] = {
                    "StreamEnabled": True,
                    "StreamViewType": props["StreamSpecification"]["StreamViewType"],
                }
            if "GlobalSecondaryIndexes" in props:
                create["GlobalSecondaryIndexes"] = [
                    {k: v for k, v in index.items() if k != "ProvisionedThroughput"}
                    for index in props["GlobalSecondaryIndexes"]
                ]
            tables[name] = {"create": create, "ttl": props.get("TimeToLiveSpecification")}
        return tables

    # -- functions --------------------------------------------------------------------------------

    def functions(self) -> dict[str, Function]:
        globals_ = self.document.get("Globals", {}).get("Function", {})
        result = {}
        for name, resource in self.of_type("AWS::Serverless::Function").items():
            props = resource.get("Properties", {})
            env = dict(self.resolve(globals_.get("Environment", {}).get("Variables", {})))
            env.update(self.resolve(props.get("Environment", {}).get("Variables", {})))
            module, _, handler = props["Handler"].rpartition(".")
            result[name] = Function(
                logical_id=name,
                code_dir=ROOT / props["CodeUri"],
                module=module,
                handler=handler,
                environment={k: str(v) for k, v in env.items()},
                timeout_s=int(props.get("Timeout", globals_.get("Timeout", 3))),
                memory_mb=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
            )
        return result

    def routes(self) -> list[Route]:
        routes = []
        for name, resource in self.of_type("AWS::Serverless::Function").items():
            for event in resource.get("Properties", {}).get("Events", {}).values():
                if event.get("Type") == "Api":
                    props = event["Properties"]
                    routes.append(Route.of(props["Method"], props["Path"], name))
        # API Gateway prefers literal path segments over variables.
        return sorted(routes, key=lambda route: route.variables)

    def minimum_compression(self) -> int | None:
        """The API's ``MinimumCompressionSize``: answers this large or larger are gzipped for clients
        that accept it (None: never)."""
        (api,) = self.of_type("AWS::Serverless::Api").values()
        size = api["Properties"].get("MinimumCompressionSize")
        return None if size is None else int(self.resolve(size))

    def gateway_response(self, name: str, context: Mapping[str, str]) -> GatewayReply:
        """What API Gateway answers itself for one of the API's gateway responses (``THROTTLED``,
        ``DEFAULT_5XX``, ...), rendered as API Gateway renders it: each ``$context`` variable of its
        template replaced by its value in ``context`` (every variable it uses must be given)."""
        (api,) = self.of_type("AWS::Serverless::Api").values()
        response = api["Properties"]["GatewayResponses"][name]

        def value(match: re.Match[str]) -> str:
            variable = match.group(0)
            if variable not in context:
                raise KeyError(f"{variable} has no value: is it safe inside JSON?")
            return context[variable]

        body = re.sub(r"\$context(?:\.[A-Za-z]+)+", value, response["ResponseTemplates"]["application/json"])
        headers = {
            header: str(given).strip("'")
            for header, given in response.get("ResponseParameters", {}).get("Headers", {}).items()
        }
        return GatewayReply(int(response.get("StatusCode", 400)), headers, body)

    def stream_mapping(self, function: str) -> StreamMapping:
        """The event source mapping that feeds ``function``."""
        (mapping,) = [mapping for mapping in self.stream_mappings() if mapping.function == function]
        return mapping

    def stream_mappings(self) -> list[StreamMapping]:
        mappings = []
        for name, resource in self.of_type("AWS::Serverless::Function").items():
            for event in resource.get("Properties", {}).get("Events", {}).values():
                if event.get("Type") not in ("DynamoDB", "Kinesis"):
                    continue
                props = event["Properties"]
                stream = props["Stream"]
                table = stream["Fn::GetAtt"][0] if isinstance(stream, Mapping) else str(stream)
                kinesis = event["Type"] == "Kinesis"
                if kinesis:
                    table = self._table_streaming_to(table)
                destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
                on_failure = None
                if isinstance(destination, Mapping):
                    target = destination.get("Fn::GetAtt") or [destination.get("Ref")]
                    on_failure = target[0]
                mappings.append(
                    StreamMapping(
                        function=name,
                        table=table,
                        batch_size=int(self.resolve(props.get("BatchSize", 100))),
                        batching_window_s=int(self.resolve(props.get("MaximumBatchingWindowInSeconds", 0))),
                        bisect_on_error=bool(self.resolve(props.get("BisectBatchOnFunctionError", False))),
                        maximum_retry_attempts=int(self.resolve(props.get("MaximumRetryAttempts", -1))),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in props.get("FunctionResponseTypes", []),
                        starting_position=str(props.get("StartingPosition", "TRIM_HORIZON")),
                        on_failure=on_failure,
                        tumbling_window_s=int(self.resolve(props.get("TumblingWindowInSeconds", 0))),
                        maximum_record_age_s=int(self.resolve(props.get("MaximumRecordAgeInSeconds", -1))),
                        # A Kinesis record's filter is on its data (the change, as JSON): the same
                        # fields a DynamoDB Streams record has at its top.
                        filter_patterns=tuple(
                            json.loads(f["Pattern"]).get("data", {}) if kinesis else json.loads(f["Pattern"])
                            for f in props.get("FilterCriteria", {}).get("Filters", [])
                        ),
                        kinesis=kinesis,
                    )
                )
        return mappings

    def _table_streaming_to(self, stream: str) -> str:
        """The table whose changes go to the Kinesis stream ``stream`` (its logical id)."""
        for name, resource in self.of_type("AWS::DynamoDB::Table").items():
            spec = resource.get("Properties", {}).get("KinesisStreamSpecification", {})
            target = spec.get("StreamArn", {})
            if isinstance(target, Mapping) and target.get("Fn::GetAtt", [None])[0] == stream:
                return name
        raise KeyError(f"no table streams its changes to {stream}")
