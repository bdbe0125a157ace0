"""One list of metric names: what the alarms and the dashboard read is what the code emits.

hookline.metric_names.Metric is the list. The code counts only its members (an AST
scan finds no literal name); every member is emitted somewhere; every metric in the
stack's own namespace that template.yaml's alarms and dashboard read is a member,
with the dimensions the code gives it: the service alone for the totals alarms
watch, and a breakdown dimension the code really emits for the dashboard's searches.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hookline import errors, template
from hookline.metric_names import Metric

from tests.support.receiver_errors import raised_by_the_receiver

PACKAGE = Path(errors.__file__).parent
# Powertools' own, emitted by `log_metrics(capture_cold_start_metric=True)`.
POWERTOOLS_METRICS = {Metric.COLD_START}
# Distinct from the defaults, so a hard-coded "Hookline" or "hookline" shows.
NAMESPACE, STACK = "Team/Webhooks", "shop-prod"
EMITTING_CALLS = {"count", "gauge", "add_metric", "single_metric"}


def modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def metric_argument(node: ast.Call) -> ast.expr | None:
    for keyword in node.keywords:
        if keyword.arg == "name":
            return keyword.value
    return node.args[0] if node.args else None


def member(node: ast.expr | None) -> Metric | None:
    """`Metric.X` as the member it names."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "Metric"
    ):
        return Metric[node.attr]
    return None


def referenced_members() -> set[Metric]:
    return {
        found
        for path, tree in modules()
        if path.name != "metric_names.py"
        for node in ast.walk(tree)
        if (found := member(node if isinstance(node, ast.expr) else None)) is not None
    }


def breakdowns() -> dict[Metric, set[str]]:
    """The dimensions (besides the service) the code counts each metric by."""
    found: dict[Metric, set[str]] = {}
    for _, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and called_name(node) == "count":
                counted = member(metric_argument(node))
                if counted is not None:
                    keys = {keyword.arg for keyword in node.keywords if keyword.arg}
                    found.setdefault(counted, set()).update(keys - {"value"})
    # The receiver counts the table metric of each error it raises per provider
    # (tests/unit/test_errors_table.py); no other reader adds a dimension.
    for kind in raised_by_the_receiver():
        if kind.metric is not None:
            found.setdefault(kind.metric, set()).add("provider")
    return found


def test_no_module_names_a_metric_with_a_literal() -> None:
    literals = []
    for path, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and called_name(node) in EMITTING_CALLS:
                argument = metric_argument(node)
                if isinstance(argument, ast.Constant | ast.JoinedStr):
                    literals.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert literals == []


def test_the_scan_sees_a_literal_metric_name() -> None:
    tree = ast.parse('count("EventsApplied")\nmetrics.add_metric(name=f"X{y}", unit=u, value=1)')
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    assert all(isinstance(metric_argument(call), ast.Constant | ast.JoinedStr) for call in calls)


def test_every_metric_is_emitted_somewhere() -> None:
    assert set(Metric) - POWERTOOLS_METRICS - referenced_members() == set()


# ------------------------------------------------------------------ template.yaml


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return template.load()


def substituted(text: str, parameters: dict[str, Any]) -> str:
    """A !Sub string as CloudFormation would make it, with placeholders for resources."""
    values = {
        "AWS::StackName": STACK,
        "AWS::Region": "eu-west-1",
        "MetricsNamespace": NAMESPACE,
        **{name: str(declared.get("Default", "")) for name, declared in parameters.items()},
    }
    values["MetricsNamespace"] = NAMESPACE

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"  # ${!Literal} is a literal ${Literal}
        return values.get(name, f"<{name}>")

    return re.sub(r"\$\{([^}]+)\}", value, text)


def dashboard(document: dict[str, Any]) -> dict[str, Any]:
    sub = document["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    text = sub if isinstance(sub, str) else sub[0]
    body: dict[str, Any] = json.loads(substituted(text, document["Parameters"]))
    return body


SEARCH = re.compile(r"""SEARCH\('\{"?([^",]+)"?,([^}]*)\}(.*)',\s*'(\w+)',\s*(\d+)\)""")


def dashboard_metrics(body: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, str], str]]:
    """(namespace, metric, dimensions, stat) of every plain metric on the dashboard."""
    for widget in body["widgets"]:
        properties = widget["properties"]
        for line in properties.get("metrics", []):
            if isinstance(line[0], dict):
                continue
            options = line[-1] if isinstance(line[-1], dict) else {}
            names = [part for part in line if isinstance(part, str)]
            namespace, metric, *pairs = names
            dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
            yield namespace, metric, dimensions, options.get("stat", properties["stat"])


def dashboard_searches(body: dict[str, Any]) -> Iterator[tuple[str, list[str], list[str], str]]:
    """(namespace, dimension schema, metric names, service) of every SEARCH expression."""
    for widget in body["widgets"]:
        for line in widget["properties"].get("metrics", []):
            if not isinstance(line[0], dict):
                continue
            match = SEARCH.fullmatch(line[0]["expression"])
            assert match, line[0]["expression"]
            namespace, schema, terms, _, _ = match.groups()
            names = re.findall(r'MetricName="(\w+)"', terms)
            [service] = re.findall(r'service="([^"]+)"', terms)
            yield namespace, [part.strip() for part in schema.split(",")], names, service


def alarms(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: found["Properties"]
        for name, found in document["Resources"].items()
        if found["Type"] == "AWS::CloudWatch::Alarm"
    }


def alarm_metrics(properties: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Namespace, MetricName and Dimensions of each metric an alarm reads."""
    if "MetricName" in properties:
        yield properties
    for query in properties.get("Metrics", []):
        if "MetricStat" in query:
            yield query["MetricStat"]["Metric"]


def test_the_functions_emit_into_the_namespace_parameter_as_the_stack(
    document: dict[str, Any],
) -> None:
    variables = document["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    assert variables["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}
    assert document["Parameters"]["MetricsNamespace"]["Default"] == "Hookline"
    pattern = document["Parameters"]["MetricsNamespace"]["AllowedPattern"]
    for good in ("Hookline", "Team/Webhooks", "shop.prod:hooks#1"):
        assert re.fullmatch(pattern, good), good
    for bad in ("AWS/Lambda", "", "with space", "a" * 256, 'quote"d'):
        assert not re.fullmatch(pattern, bad), bad


def test_alarms_read_the_totals_the_code_emits(document: dict[str, Any]) -> None:
    own = 0
    for name, properties in alarms(document).items():
        for metric in alarm_metrics(properties):
            if metric["Namespace"] != {"Ref": "MetricsNamespace"}:
                assert str(metric["Namespace"]).startswith("AWS/"), name
                continue
            own += 1
            assert metric["MetricName"] in set(Metric), name
            # count() and gauge() emit every total with the service dimension alone.
            assert metric["Dimensions"] == [
                {"Name": "service", "Value": {"Ref": "AWS::StackName"}}
            ], name
    assert own >= 10


def test_the_dashboard_reads_what_the_code_emits(document: dict[str, Any]) -> None:
    body = dashboard(document)
    plain = list(dashboard_metrics(body))
    searches = list(dashboard_searches(body))
    for namespace, metric, dimensions, _ in plain:
        if namespace.startswith("AWS/"):
            continue
        assert namespace == NAMESPACE, metric  # the parameter, never a fixed name
        assert metric in set(Metric), metric
        assert dimensions == {"service": STACK}, metric
    emitted_by = breakdowns()
    for namespace, schema, names, service in searches:
        assert (namespace, service) == (NAMESPACE, STACK)
        assert schema[0] == "service"
        assert names
        for name in names:
            assert set(schema[1:]) <= emitted_by.get(Metric(name), set()), (name, schema)
    assert {name for _, _, names, _ in searches for name in names} >= {
        "WebhooksAccepted",
        "WebhooksRejected",
        "SignatureRejected",
    }


OPERATORS_LOOK_FOR = (
    *("EventsApplied", "EventsStale", "EventsOrphaned", "EventsParked", "BreakerOpen"),
    *("EventsRecovered", "RecoveryEnqueued", "WaitingEventAge", "EventsFailed"),
)


def test_the_dashboard_shows_what_operators_look_for(document: dict[str, Any]) -> None:
    body = dashboard(document)
    shown = {(namespace, metric, stat) for namespace, metric, _, stat in dashboard_metrics(body)}
    shown_by_name = {(namespace, metric) for namespace, metric, _ in shown}
    for metric in OPERATORS_LOOK_FOR:
        assert (NAMESPACE, metric) in shown_by_name, metric
    assert (NAMESPACE, "EndToEndLatency", "p50") in shown
    assert (NAMESPACE, "EndToEndLatency", "p99") in shown
    queues = {
        (metric, dimensions["QueueName"])
        for namespace, metric, dimensions, _ in dashboard_metrics(body)
        if namespace == "AWS/SQS"
    }
    for queue in ("<EventsQueue.QueueName>", "<EventsDLQ.QueueName>"):
        assert ("ApproximateNumberOfMessagesVisible", queue) in queues
        assert ("ApproximateAgeOfOldestMessage", queue) in queues
    functions = {
        (metric, dimensions["FunctionName"])
        for namespace, metric, dimensions, _ in dashboard_metrics(body)
        if namespace == "AWS/Lambda"
    }
    for function in ("<ConsumerFunction>", "<ReconcilerFunction>"):
        assert ("Errors", function) in functions
        assert ("Duration", function) in functions


def test_the_dashboard_shows_every_alarm_s_state(document: dict[str, Any]) -> None:
    [alarm_widget] = [w for w in dashboard(document)["widgets"] if w["type"] == "alarm"]
    listed = alarm_widget["properties"]["alarms"]
    assert sorted(listed) == sorted(f"<{name}.Arn>" for name in alarms(document))


def test_the_dashboard_is_the_stack_s_and_its_url_an_output(document: dict[str, Any]) -> None:
    properties = document["Resources"]["Dashboard"]["Properties"]
    # Dashboards are global to the account: the region keeps two regions' stacks apart.
    assert properties["DashboardName"] == {"Fn::Sub": "${AWS::StackName}-${AWS::Region}"}
    url = document["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert substituted(url, {}) == (
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
        "#dashboards:name=<Dashboard>"
    )
