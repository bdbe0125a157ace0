"""What template.yaml says each function is and what invokes it.

The local stack takes every route, handler, environment variable, layer,
event source and schedule from here, so it runs what `sam deploy` would ship.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hookline import template

FUNCTION_TYPE = "AWS::Serverless::Function"
LAYER_TYPE = "AWS::Serverless::LayerVersion"

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class WiringError(ValueError):
    """template.yaml declares something the local stack cannot run."""


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    runtime: str
    architecture: str
    timeout_seconds: int
    memory_mb: int
    environment: Mapping[str, str]
    layers: tuple[Path, ...]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    payload_format: str

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route serves the request, else None."""
        if method.upper() != self.method and self.method != "ANY":
            return None
        names: list[str] = []
        pattern = ""
        # Split gives literal, parameter, literal, ...: `{name}` is one segment, `{name+}` the rest.
        for index, part in enumerate(re.split(r"\{([^}]+)\}", self.path)):
            if index % 2 == 0:
                pattern += re.escape(part)
            else:
                names.append(part.rstrip("+"))
                pattern += "(.+)" if part.endswith("+") else "([^/]+)"
        matched = re.fullmatch(pattern, path)
        return dict(zip(names, matched.groups(), strict=True)) if matched else None


@dataclass(frozen=True)
class QueueSource:
    function: str
    queue: str
    batch_size: int
    maximum_concurrency: int
    report_batch_item_failures: bool


@dataclass(frozen=True)
class Schedule:
    function: str
    name: str
    expression: str
    interval_seconds: int
    enabled: bool
    input: str | None


@dataclass(frozen=True)
class Wiring:
    functions: Mapping[str, FunctionSpec]
    routes: tuple[Route, ...]
    queue_sources: tuple[QueueSource, ...]
    schedules: tuple[Schedule, ...]

    def route_for(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            parameters = route.match(method, path)
            if parameters is not None:
                return route, parameters
        return None


def _function_property(
    document: Mapping[str, Any], properties: Mapping[str, Any], name: str, default: Any
) -> Any:
    globals_ = document.get("Globals", {}).get("Function", {})
    return properties.get(name, globals_.get(name, default))


def _ref_target(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        return str(value["Fn::GetAtt"][0])
    return None


def _layer_paths(document: Mapping[str, Any], root: Path, layers: list[Any]) -> tuple[Path, ...]:
    paths = []
    for layer in layers:
        logical_id = _ref_target(layer)
        found = document.get("Resources", {}).get(logical_id or "")
        if found is None or found.get("Type") != LAYER_TYPE:
            raise WiringError(f"layer {layer!r} is not a layer of this template")
        paths.append((root / found["Properties"]["ContentUri"]).resolve())
    return tuple(paths)


def schedule_seconds(expression: str) -> int:
    matched = _RATE.match(expression.strip())
    if matched is None:
        raise WiringError(f"the local stack runs rate(...) schedules only, not {expression!r}")
    count, unit = int(matched.group(1)), matched.group(2).rstrip("s")
    return count * _UNIT_SECONDS[unit]


def load(document: Mapping[str, Any], resolver: template.Resolver, root: Path) -> Wiring:
    """Every function, route, queue source and schedule, intrinsics resolved.

    `root` is the directory CodeUri and ContentUri are relative to: the project
    for template.yaml, the build directory for `sam build` output.
    """
    functions: dict[str, FunctionSpec] = {}
    routes: list[Route] = []
    sources: list[QueueSource] = []
    schedules: list[Schedule] = []
    for logical_id, found in document.get("Resources", {}).items():
        if found.get("Type") != FUNCTION_TYPE:
            continue
        properties = found.get("Properties", {})

        def prop(name: str, default: Any, _p: Mapping[str, Any] = properties) -> Any:
            return resolver.resolve(_function_property(document, _p, name, default))

        architectures = prop("Architectures", ["x86_64"])
        functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_dir=(root / str(prop("CodeUri", "."))).resolve(),
            handler=str(prop("Handler", "")),
            runtime=str(prop("Runtime", "")),
            architecture=str(architectures[0]),
            timeout_seconds=int(prop("Timeout", 3)),
            memory_mb=int(prop("MemorySize", 128)),
            environment=template.function_environment(document, logical_id, resolver),
            layers=_layer_paths(
                document, root, _function_property(document, properties, "Layers", [])
            ),
        )
        for name, event in properties.get("Events", {}).items():
            kind = event.get("Type")
            event_properties = resolver.resolve(
                {k: v for k, v in event.get("Properties", {}).items() if k != "Queue"}
            )
            if kind == "HttpApi":
                routes.append(
                    Route(
                        method=str(event_properties.get("Method", "ANY")).upper(),
                        path=str(event_properties.get("Path", "/")),
                        function=logical_id,
                        payload_format=str(event_properties.get("PayloadFormatVersion", "2.0")),
                    )
                )
            elif kind == "SQS":
                queue = _ref_target(event.get("Properties", {}).get("Queue"))
                if queue is None:
                    raise WiringError(f"{logical_id}.{name}: the queue must be a template queue")
                scaling = event_properties.get("ScalingConfig", {})
                sources.append(
                    QueueSource(
                        function=logical_id,
                        queue=queue,
                        batch_size=int(event_properties.get("BatchSize", 10)),
                        maximum_concurrency=int(scaling.get("MaximumConcurrency", 2)),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in event_properties.get("FunctionResponseTypes", []),
                    )
                )
            elif kind in ("Schedule", "ScheduleV2"):
                expression = str(event_properties["Schedule"])
                enabled = event_properties.get("Enabled", True)
                state = str(event_properties.get("State", "ENABLED"))
                schedules.append(
                    Schedule(
                        function=logical_id,
                        name=name,
                        expression=expression,
                        interval_seconds=schedule_seconds(expression),
                        enabled=bool(enabled) and enabled != "false" and state == "ENABLED",
                        input=event_properties.get("Input"),
                    )
                )
            else:
                raise WiringError(f"{logical_id}.{name}: no local event source for {kind}")
    return Wiring(functions, tuple(routes), tuple(sources), tuple(schedules))
