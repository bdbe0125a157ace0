"""Cold starts against their floors, as Lambda runs them. Prints; asserts nothing.

Each function is imported in a fresh python3.13 interpreter started the way the
Lambda runtime's bootstrap starts it (`-I -S`: no site-packages, no PYTHONPATH),
with sys.path holding only the function's code directory and its layers: the
hookline layer (shared/) and the dependencies layer, installed for python3.13
from layers/dependencies/requirements.txt into .bench/ on first use (a pip
install; later runs reuse it until requirements.txt changes).

Ours: `import app`, then what the function builds before its first answer (its
clients and wiring: the receiver's intake(), the consumer's consumer(), the
reconciler's reconciler()), with tracing disabled as template.yaml's default
(Tracing=PassThrough) deploys it. Floor: what any such function must load:

- receiver: `import boto3; boto3.client("sqs")`;
- consumer: the same, plus `import psycopg` and its Connection class (it
  talks to PostgreSQL);
- reconciler: the consumer's floor: every run moves dead letters (SQS) and
  reads the ledger (PostgreSQL). Its other clients (CloudWatch, Lambda,
  DynamoDB for the circuit breaker) are ours, not the floor's.

Rounds alternate floor and ours, so load from others on the machine hits both;
the figure is the median of each. A line with tracing enabled (Tracing=Active:
X-Ray's SDK is imported) is printed for information.

    .venv/bin/python bench/cold.py [--rounds N] [--importtime FUNCTION]

`--importtime receiver` prints the slowest imports of one cold start
(`-X importtime`, cumulative, top 25) instead of the table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.table import Row, print_table  # noqa: E402

REQUIREMENTS = ROOT / "layers" / "dependencies" / "requirements.txt"
CACHE = ROOT / ".bench"
DEFAULT_PYTHON = Path.home() / ".pyenv" / "versions" / "3.13.0" / "bin" / "python3.13"
ROUNDS = 15

# What Lambda sets, and what template.yaml gives each function. No AWS call is
# made: clients are built, never used.
LAMBDA_ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "POWERTOOLS_SERVICE_NAME": "hookline-bench",
    "POWERTOOLS_METRICS_NAMESPACE": "HooklineBench",
    "LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-events.fifo",
    "DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-dlq.fifo",
    "SECRETS_NAME": "bench/webhook-secrets",
    "IDEMPOTENCY_TABLE": "bench-idempotency",
    "DATABASE_URL": "postgresql://bench@127.0.0.1:1/bench",
    "CONSUMER_FUNCTION_NAME": "bench-ConsumerFunction",
    "EVENTS_QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:bench-events.fifo",
}
TRACING = {
    "PassThrough": {"POWERTOOLS_TRACE_DISABLED": "true"},
    "Active": {"POWERTOOLS_TRACE_DISABLED": "false"},
}

BOTO3_FLOOR = 'import boto3\nboto3.client("sqs")\n'
POSTGRES_FLOOR = BOTO3_FLOOR + "import psycopg\npsycopg.Connection\n"


@dataclass(frozen=True)
class Function:
    name: str
    ours: str  # what its cold start runs, timed
    floor: str
    floor_name: str


FUNCTIONS = (
    Function(
        "receiver",
        "import app\nfrom hookline.receiver.api import intake\nintake()\n",
        BOTO3_FLOOR,
        "boto3 + sqs client",
    ),
    Function(
        "consumer",
        "import app\nfrom hookline.consumer.build import consumer\nconsumer()\n",
        POSTGRES_FLOOR,
        "boto3 + sqs client + psycopg",
    ),
    Function(
        "reconciler",
        "import app\nfrom hookline.reconcile.build import reconciler\nreconciler()\n",
        POSTGRES_FLOOR,
        "boto3 + sqs client + psycopg",
    ),
)

TIMED = """import time
start = time.perf_counter()
{code}
print(time.perf_counter() - start)
"""


def python() -> Path:
    chosen = Path(os.environ.get("HOOKLINE_BENCH_PYTHON", DEFAULT_PYTHON))
    if not chosen.exists():
        sys.exit(f"{chosen} not found: set HOOKLINE_BENCH_PYTHON to a python3.13")
    return chosen


def dependencies_layer(interpreter: Path) -> Path:
    """The dependencies layer for `interpreter`, built once per requirements.txt."""
    key = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    layer = CACHE / f"layer-{interpreter.name}-{key}"
    if layer.is_dir():
        return layer
    building = layer.with_name(layer.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    print(f"installing {REQUIREMENTS.relative_to(ROOT)} into {layer} ...", file=sys.stderr)
    install = [str(interpreter), "-m", "pip", "install", "--quiet", "--target", str(building)]
    subprocess.run(
        [*install, "--requirement", str(REQUIREMENTS)],
        check=True,
    )
    building.rename(layer)  # only a complete install is ever reused
    return layer


def command(interpreter: Path, layer: Path, function: str, code: str) -> list[str]:
    # The bootstrap's interpreter: isolated, no site; the path is the function's and its layers'.
    paths = [str(ROOT / "functions" / function), str(ROOT / "shared"), str(layer)]
    return [str(interpreter), "-I", "-S", "-c", f"import sys\nsys.path[:0] = {paths!r}\n{code}"]


def environment(function: str, tracing: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        **LAMBDA_ENVIRONMENT,
        "AWS_LAMBDA_FUNCTION_NAME": f"bench-{function}",
        **TRACING[tracing],
    }


def seconds(interpreter: Path, layer: Path, function: str, code: str, tracing: str) -> float:
    run = subprocess.run(
        command(interpreter, layer, function, TIMED.format(code=code)),
        env=environment(function, tracing),
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        sys.exit(f"{function} failed to start:\n{run.stderr[-3000:]}")
    return float(run.stdout.strip().splitlines()[-1])


def measure(rounds: int = ROUNDS, *, traced: bool = False) -> list[Row]:
    interpreter = python()
    layer = dependencies_layer(interpreter)
    rows = []
    for function in FUNCTIONS:
        floor: list[float] = []
        ours: list[float] = []
        active: list[float] = []
        # One unmeasured start each writes the bytecode caches both sides then read.
        seconds(interpreter, layer, function.name, function.floor, "PassThrough")
        seconds(interpreter, layer, function.name, function.ours, "Active")
        for _ in range(rounds):
            floor.append(seconds(interpreter, layer, function.name, function.floor, "PassThrough"))
            ours.append(seconds(interpreter, layer, function.name, function.ours, "PassThrough"))
            if traced:
                active.append(seconds(interpreter, layer, function.name, function.ours, "Active"))
        floor_ms = statistics.median(floor) * 1e3
        rows.append(
            Row(
                figure=f"{function.name} cold import",
                ours=statistics.median(ours) * 1e3,
                floor=floor_ms,
                unit="ms",
                goal="<= 1.3x",
                floor_name=function.floor_name,
            )
        )
        if traced:
            rows.append(
                Row(
                    figure=f"{function.name} cold import, Tracing=Active",
                    ours=statistics.median(active) * 1e3,
                    floor=floor_ms,
                    unit="ms",
                    goal="(information)",
                    floor_name=function.floor_name,
                )
            )
    return rows


def rows() -> list[Row]:
    return measure()


def importtime(function_name: str, tracing: str, top: int = 25) -> None:
    """The slowest imports (cumulative microseconds) of one cold start of `function_name`."""
    interpreter = python()
    layer = dependencies_layer(interpreter)
    [function] = [f for f in FUNCTIONS if f.name == function_name]
    argv = command(interpreter, layer, function.name, function.ours)
    run = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        env=environment(function.name, tracing),
        capture_output=True,
        text=True,
        check=True,
    )
    found: list[tuple[int, int, str]] = []
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        found.append((int(cumulative_us), int(own_us), name.rstrip()))
    # Top-level imports are indented by one space only; nested ones by more.
    total = sum(cumulative for cumulative, _, name in found if not name.startswith("  "))
    print(f"{function.name}, Tracing={tracing}: {total / 1e3:.1f} ms of imports")
    for cumulative, own, name in sorted(found, reverse=True)[:top]:
        print(f"{cumulative / 1e3:8.1f} ms cumulative {own / 1e3:7.1f} ms own  {name.strip()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--traced", action="store_true", help="also time Tracing=Active")
    parser.add_argument("--importtime", choices=[f.name for f in FUNCTIONS])
    parser.add_argument("--tracing", choices=sorted(TRACING), default="PassThrough")
    arguments = parser.parse_args()
    if arguments.importtime:
        importtime(arguments.importtime, arguments.tracing)
    else:
        print_table(measure(arguments.rounds, traced=arguments.traced))
