"""`hookline local`: start everything, serve until told to stop, stop cleanly.

Order of start: PostgreSQL (and migrations), the AWS endpoint and the
template's resources, one warm container per function (so an import error or a
dependency missing from a layer stops the start with its traceback), then the
API, the queue pollers and the schedules. Stop runs the other way, letting the
invocations in flight finish.

One stack per data folder: it holds an flock on <data folder>/stack.lock for
its whole life (the kernel drops it however the process ends), so a second
start is refused, and a state file or an embedded PostgreSQL that a killed run
left behind is cleaned up by the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from hookline import template
from hookline.aws import CLIENT_CONFIG
from hookline.database import connect
from hookline.errors import ConfigurationError
from hookline.files import write_private
from hookline.local import hints, lock, resources, services
from hookline.local.api import LocalApi
from hookline.local.console import Console
from hookline.local.invoke import LocalLambdaApi
from hookline.local.metrics import MetricsForwarder
from hookline.local.runtime import (
    ContainerDied,
    FunctionPool,
    Invocation,
    build_launch,
    container_environment,
    source_launch,
)
from hookline.local.sandbox import ProviderSandbox
from hookline.local.sandbox import serve as serve_sandbox
from hookline.local.sources import QueuePoller, Scheduler
from hookline.local.wiring import Schedule, Wiring
from hookline.local.wiring import load as load_wiring
from hookline.migrate import migrate
from hookline.providers import PROVIDER_NAMES
from hookline.providers.generic import parse_specs
from hookline.sam import host_architecture
from hookline.schema import schema_name

STATE_FILE = "stack.json"
# Held (flock) by the running stack for its whole life: one stack per data folder.
LOCK_FILE = "stack.lock"
STACK_NAME = "hookline-local"
REGION = "us-east-1"
# Containers per function that no event source or reserved concurrency bounds.
DEFAULT_CONCURRENCY = 4
_SOURCE_DIRECTORIES = ("shared", "functions", "layers")


class StackAlreadyRunning(ConfigurationError):
    """`hookline local` on a data folder another `hookline local` is running from."""

    def __init__(self, data_dir: Path, pid: int | None, api_url: str | None) -> None:
        where = ", ".join(
            part for part in (api_url, f"pid {pid}" if pid else None) if part is not None
        )
        doing = "already runs" if api_url else "is starting"
        super().__init__(
            f"a local stack {doing} from {_display(data_dir)}{f' ({where})' if where else ''}: "
            "stop it first, or pass --data-dir"
        )
        self.data_dir = data_dir
        self.pid = pid
        self.api_url = api_url


def _display(path: Path) -> str:
    """`path` relative to the current directory when inside it: as the person typed it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


@dataclass
class LocalOptions:
    project: Path
    secrets_file: Path
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 3000
    database_url: str | None = None
    # hookline's schema; None: a DatabaseSchema parameter override, else the template's.
    schema: str | None = None
    endpoint_url: str | None = None
    # With endpoint_url: services served at an endpoint of their own (botocore names).
    service_endpoints: Mapping[str, str] = field(default_factory=dict)
    code: str = "auto"  # auto | build | source
    build_dir: Path | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    schedule_every: int | None = None

    @property
    def template_path(self) -> Path:
        return self.project / "template.yaml"

    @property
    def built_template(self) -> Path:
        return (self.build_dir or self.project / ".aws-sam" / "build") / "template.yaml"


@dataclass(frozen=True)
class CodeChoice:
    mode: str  # "build" or "source"
    template_path: Path
    reason: str


def _newest_source(project: Path) -> float:
    newest = (project / "template.yaml").stat().st_mtime
    for directory in _SOURCE_DIRECTORIES:
        for path in (project / directory).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                newest = max(newest, path.stat().st_mtime)
    return newest


def _foreign_binaries(build_root: Path, architecture: str) -> list[Path]:
    foreign = "aarch64" if architecture == "x86_64" else "x86_64"
    return sorted(build_root.glob(f"*/python/**/*{foreign}*.so"))[:3]


def choose_code(options: LocalOptions) -> CodeChoice:
    """Run `sam build` output when there is a usable one, else the source tree."""
    built = options.built_template
    if options.code == "source":
        return CodeChoice("source", options.template_path, "--code source")
    if not built.exists():
        if options.code == "build":
            raise ConfigurationError(
                f"no sam build output at {built.parent}: run `make build-local`"
            )
        return CodeChoice("source", options.template_path, "no sam build output")
    foreign = _foreign_binaries(built.parent, host_architecture())
    if foreign:
        message = (
            f"{built.parent} was built for another architecture ({foreign[0].name}): "
            "run `make build-local` to build for this machine"
        )
        if options.code == "build":
            raise ConfigurationError(message)
        return CodeChoice("source", options.template_path, message)
    if built.stat().st_mtime < _newest_source(options.project):
        if options.code == "auto":
            return CodeChoice(
                "source", options.template_path, "sam build output is older than the sources"
            )
        return CodeChoice("build", built, "--code build (older than the sources)")
    return CodeChoice("build", built, f"sam build output in {built.parent}")


@dataclass
class RunningStack:
    """What `hookline status`, `send` and `event` need to find the running stack."""

    api_url: str
    endpoint_url: str
    region: str
    stack_name: str
    database_url: str
    database_schema: str
    code: str
    secrets_file: str
    sandbox_url: str
    lambda_url: str
    resources: resources.Resources
    wiring: Wiring
    pid: int = field(default_factory=os.getpid)
    # The embedded server over TCP (with its password): for containers; None with --database-url.
    database_tcp_url: str | None = None
    # Services moto serves from a process of their own, by botocore service name
    # (the functions get them as AWS_ENDPOINT_URL_<SERVICE>); the rest at endpoint_url.
    service_endpoints: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "api_url": self.api_url,
            "endpoint_url": self.endpoint_url,
            "service_endpoints": self.service_endpoints,
            "region": self.region,
            "stack_name": self.stack_name,
            "database_url": self.database_url,
            "database_tcp_url": self.database_tcp_url,
            "database_schema": self.database_schema,
            "code": self.code,
            "secrets_file": self.secrets_file,
            "sandbox_url": self.sandbox_url,
            "lambda_url": self.lambda_url,
            "queues": self.resources.queues,
            "tables": self.resources.tables,
            "secrets": self.resources.secrets,
            "functions": {
                name: {
                    "handler": spec.handler,
                    "code_dir": str(spec.code_dir),
                    "runtime": spec.runtime,
                    "timeout": spec.timeout_seconds,
                    "memory": spec.memory_mb,
                    "layers": [str(layer) for layer in spec.layers],
                    "environment": dict(spec.environment),
                }
                for name, spec in self.wiring.functions.items()
            },
            "routes": [
                {"method": r.method, "path": r.path, "function": r.function}
                for r in self.wiring.routes
            ],
            "queue_sources": [
                {
                    "function": s.function,
                    "queue": s.queue,
                    "batch_size": s.batch_size,
                    "maximum_concurrency": s.maximum_concurrency,
                    "report_batch_item_failures": s.report_batch_item_failures,
                }
                for s in self.wiring.queue_sources
            ],
            "schedules": [
                {"function": s.function, "expression": s.expression, "enabled": s.enabled}
                for s in self.wiring.schedules
            ],
        }


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """The running local stack's state file, or None when no stack is running.

    A stack that was killed leaves its file behind but not its lock: the lock,
    not the file (nor a pid in it, which another process may have by now), says
    whether the stack is there.
    """
    if not lock.held(data_dir / LOCK_FILE):
        return None
    return _state_file(data_dir)


def _state_file(data_dir: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


@contextmanager
def claim_data_dir(data_dir: Path, console: Console) -> Iterator[None]:
    """Hold `data_dir` for one stack's life; StackAlreadyRunning if another holds it.

    A state file found here once the lock is ours is a killed run's: removed, so
    nothing reads it as a running stack's.
    """
    with ExitStack() as held:
        try:
            held.enter_context(lock.hold(data_dir / LOCK_FILE))
        except lock.Locked as error:
            running = _state_file(data_dir) or {}
            # Its address only if the file is the holder's (not one a killed run left).
            api_url = running.get("api_url") if running.get("pid") == error.pid else None
            raise StackAlreadyRunning(data_dir, error.pid, api_url) from None
        if (data_dir / STATE_FILE).exists():
            stale = _state_file(data_dir) or {}
            (data_dir / STATE_FILE).unlink(missing_ok=True)
            console.info(
                "local",
                f"removed {_display(data_dir / STATE_FILE)}, left by a run that ended "
                f"without stopping (pid {stale.get('pid', '?')})",
            )
        yield


LOCAL_SERVICES = ("sqs", "dynamodb", "secretsmanager", "cloudwatch")
# Served by a moto process of their own when the stack starts moto: each moto process
# has one interpreter lock, and the consumer's idempotency records (two DynamoDB calls
# an event) would otherwise queue behind every SendMessage the receiver makes.
SEPARATE_SERVICES = ("dynamodb",)


def aws_clients(
    endpoint_url: str,
    region: str,
    names: tuple[str, ...] = LOCAL_SERVICES,
    config: Config | None = None,
    service_endpoints: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """boto3 clients for the local stack's endpoints (moto, or its Lambda API); `config`
    replaces the functions' short timeouts and retries (an operator's invoke waits, once).
    `service_endpoints`: a service's own endpoint, in place of `endpoint_url`."""
    # Any: the stubs type clients by literal service name, these are chosen at run time.
    session: Any = boto3.session.Session(
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto accepts anything; reaches nothing real
        region_name=region,
    )
    return {
        name: session.client(
            name,
            endpoint_url=(service_endpoints or {}).get(name, endpoint_url),
            config=config or CLIENT_CONFIG,
        )
        for name in names
    }


def _secret_name(document: Mapping[str, Any], resolver: template.Resolver) -> str:
    globals_env = document.get("Globals", {}).get("Function", {}).get("Environment", {})
    value = globals_env.get("Variables", {}).get("SECRETS_NAME")
    if value is None:
        raise ConfigurationError("template.yaml sets no SECRETS_NAME for the functions")
    return str(resolver.resolve(value))


def database_schema(options: LocalOptions, document: Mapping[str, Any]) -> str:
    """--schema, else a DatabaseSchema parameter override, else the template's default."""
    overridden = options.parameters.get("DatabaseSchema")
    if options.schema is not None and overridden and options.schema != overridden:
        raise ConfigurationError(
            f"--schema {options.schema} and DatabaseSchema={overridden} disagree: give one"
        )
    default = document.get("Parameters", {}).get("DatabaseSchema", {}).get("Default")
    chosen = options.schema if options.schema is not None else overridden or default
    if chosen is None:
        raise ConfigurationError("template.yaml declares no DatabaseSchema parameter")
    return schema_name(str(chosen))


class LocalStack:
    def __init__(self, options: LocalOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.pools: dict[str, FunctionPool] = {}
        self.running: RunningStack | None = None
        self.metrics: MetricsForwarder | None = None
        self.sqs: Any = None
        self.pollers: list[QueuePoller] = []
        self._exit = ExitStack()
        self.database_tcp_url: str | None = None
        self.service_endpoints: dict[str, str] = {}

    def invoke(self, function: str, event: dict[str, Any]) -> Invocation:
        invocation = self.pools[function].invoke(event)
        if invocation.failed and invocation.error is not None:
            self.console.error(
                function,
                f"{invocation.error.get('errorType')}: {invocation.error.get('errorMessage')}",
            )
        return invocation

    def _database(self, schema: str) -> str:
        url = self.options.database_url
        if not url:
            self.console.info(
                "postgres", f"embedded server in {self.options.data_dir / 'postgres'}"
            )
            server = self._exit.enter_context(
                services.embedded_server(
                    self.options.data_dir / "postgres",
                    # On TCP too, for containers: `hookline event` writes events/env.json.
                    listen=self.options.host,
                    report=lambda line: self.console.warning("postgres", line),
                )
            )
            url, self.database_tcp_url = server.url, server.tcp_url
        # The database may hold a shop's own tables: migrate touches hookline's schema only.
        with connect(url, schema, statement_timeout_ms=0) as connection:
            applied = migrate(connection, schema=schema)
        names = ", ".join(f"{m.version}_{m.name}" for m in applied) or "none pending"
        self.console.info("postgres", f"schema {schema}, migrations: {names}")
        return url

    def _endpoint(self) -> str:
        """The AWS endpoint: the one given, else moto processes of the stack's own."""
        if self.options.endpoint_url:
            self.service_endpoints.update(self.options.service_endpoints)
            return self.options.endpoint_url
        endpoint = self._exit.enter_context(services.moto_process(self.options.host))
        for service in SEPARATE_SERVICES:
            self.service_endpoints[service] = self._exit.enter_context(
                services.moto_process(self.options.host)
            )
        apart = "".join(f", {name} at {url}" for name, url in self.service_endpoints.items())
        self.console.info("aws", f"moto server at {endpoint}{apart}")
        return endpoint

    def start(self) -> RunningStack:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> RunningStack:
        options = self.options
        # Only reading, so far: an unusable secret would only ever answer 503.
        choice = choose_code(options)
        document = template.load(choice.template_path)
        # Refused here, not answered 503 on every delivery: the receiver's own rules.
        generic = parse_specs(options.parameters.get("GenericProviders", ""))
        secret_text = resources.secret_document(options.secrets_file, (*PROVIDER_NAMES, *generic))
        schema = database_schema(options, document)
        # Before anything is written or started, and released last: one stack per folder.
        self._exit.enter_context(claim_data_dir(options.data_dir, self.console))
        if options.port and not services.port_free(options.host, options.port):
            raise ConfigurationError(
                f"{options.host}:{options.port} is in use (another `hookline local`?): "
                "stop it or pass --port"
            )
        self.console.info("local", f"running functions from {choice.mode}: {choice.reason}")
        database_url = self._database(schema)
        endpoint = self._endpoint()
        credentials = json.loads(secret_text)
        sandbox = self._exit.enter_context(
            serve_sandbox(
                ProviderSandbox(
                    mercadopago_token=credentials.get("mercadopago_access_token"),
                    stripe_api_key=credentials.get("stripe_api_key"),
                    square_access_token=credentials.get("square_access_token"),
                    # Khalti and Mollie sign nothing: their entry is the API key.
                    khalti_secret_key=(credentials.get("khalti") or [None])[0],
                    mollie_api_key=(credentials.get("mollie") or [None])[0],
                ),
                options.host,
            )
        )
        self.console.info(
            "sandbox",
            f"Mercado Pago, eSewa, Khalti, Mollie, Stripe and Square APIs at {sandbox.url}",
        )
        port = options.port or services.free_port(options.host)
        api_base = f"http://{options.host}:{port}"
        parameters = {
            "DatabaseUrl": database_url,
            "DatabaseSchema": schema,
            "SquareNotificationUrl": f"{api_base}/webhooks/square",
            "MercadoPagoApiUrl": sandbox.api_urls["mercadopago"],
            "EsewaApiUrl": sandbox.api_urls["esewa"],
            "KhaltiApiUrl": sandbox.api_urls["khalti"],
            "MollieApiUrl": sandbox.api_urls["mollie"],
            "StripeApiUrl": sandbox.stripe_url,
            "SquareApiUrl": sandbox.square_url,
            "Architecture": host_architecture(),
            **options.parameters,
        }
        clients = aws_clients(endpoint, REGION, service_endpoints=self.service_endpoints)
        self.metrics = MetricsForwarder(clients.pop("cloudwatch"))
        self.metrics.start()
        self._exit.callback(self.metrics.stop)
        secret_name = _secret_name(
            document, template.Resolver(document, STACK_NAME, REGION, parameters)
        )
        created = resources.create(
            document,
            **clients,
            stack_name=STACK_NAME,
            region=REGION,
            parameters=parameters,
            secret_strings={secret_name: secret_text},
        )
        self.console.info(
            "aws",
            f"queues {', '.join(created.queues)}; tables {', '.join(created.tables)}; "
            f"secret {secret_name} from {options.secrets_file}",
        )
        root = choice.template_path.parent
        wiring = load_wiring(document, created.resolver(document), root)
        # Before the functions: their environment names it (AWS_ENDPOINT_URL_LAMBDA).
        lambda_api = LocalLambdaApi(
            lambda: set(self.pools),
            self.invoke,
            lambda: self.pollers,
            lambda name: self.pools[name].function_arn,
            options.host,
        )
        lambda_api.start()
        self._exit.callback(lambda_api.stop)
        self._start_functions(wiring, document, choice, endpoint, lambda_api.url)
        sqs = self.sqs = clients["sqs"]
        for source in wiring.queue_sources:
            poller = QueuePoller(
                source,
                created.queues[source.queue],
                created.attributes[(source.queue, "Arn")],
                sqs,
                self.invoke,
                self.console.info,
                REGION,
            )
            poller.start()
            self.pollers.append(poller)
            grace = wiring.functions[source.function].timeout_seconds + 5
            self._exit.callback(poller.stop, grace)
            self.console.info(
                source.function,
                f"polling {source.queue}: batch {source.batch_size}, "
                f"up to {source.maximum_concurrency} at once",
            )
        for schedule in wiring.schedules:
            self._start_schedule(schedule, wiring)
        # Last to start, first to stop: no request arrives that nothing would consume.
        api = LocalApi(wiring, self.invoke, options.host, port, self._access_line)
        api.start()
        self._exit.callback(api.stop)
        self.running = RunningStack(
            api_url=api.url,
            endpoint_url=endpoint,
            region=REGION,
            stack_name=STACK_NAME,
            database_url=database_url,
            database_schema=schema,
            code=choice.mode,
            secrets_file=str(options.secrets_file),
            sandbox_url=sandbox.url,
            lambda_url=lambda_api.url,
            resources=created,
            wiring=wiring,
            database_tcp_url=self.database_tcp_url,
            service_endpoints=dict(self.service_endpoints),
        )
        self._write_state(self.running)
        for route in wiring.routes:
            self.console.info("api", f"{route.method:<5} {api.url}{route.path} -> {route.function}")
        return self.running

    def _start_functions(
        self,
        wiring: Wiring,
        document: Mapping[str, Any],
        choice: CodeChoice,
        endpoint: str,
        lambda_url: str,
    ) -> None:
        python: str | None = None
        if choice.mode == "build":
            from hookline.sam import LAMBDA_PYTHON, ToolMissing, find_lambda_python

            try:
                python = str(find_lambda_python() / f"python{LAMBDA_PYTHON}")
            except ToolMissing as error:
                raise ConfigurationError(str(error)) from error
        sources = {s.function: s.maximum_concurrency for s in wiring.queue_sources}
        self._exit.callback(self._close_pools)
        for name, spec in wiring.functions.items():
            properties = template.resource(document, name).get("Properties", {})
            reserved = properties.get("ReservedConcurrentExecutions")
            concurrency = int(sources.get(name) or reserved or DEFAULT_CONCURRENCY)
            launch = build_launch(spec, python) if python else source_launch(spec)
            pool = FunctionPool(
                spec,
                launch,
                container_environment(
                    spec, endpoint, REGION, lambda_url, service_endpoints=self.service_endpoints
                ),
                self._function_output,
                concurrency,
                REGION,
            )
            self.pools[name] = pool
            try:
                pool.warm()
            except ContainerDied as error:
                raise ConfigurationError(str(error)) from error
            self.console.info(name, f"ready: {spec.handler} in {spec.code_dir}")

    def _start_schedule(self, schedule: Schedule, wiring: Wiring) -> None:
        if not schedule.enabled:
            self.console.info(schedule.function, f"schedule {schedule.name} is disabled")
            return
        if self.options.schedule_every:
            schedule = Schedule(
                schedule.function,
                schedule.name,
                schedule.expression,
                self.options.schedule_every,
                schedule.enabled,
                schedule.input,
            )
        scheduler = Scheduler(schedule, self.invoke, self.console.info, REGION)
        scheduler.start()
        self._exit.callback(scheduler.stop, wiring.functions[schedule.function].timeout_seconds + 5)
        self.console.info(
            schedule.function,
            f"scheduled {schedule.expression} (every {schedule.interval_seconds}s)",
        )

    def _close_pools(self) -> None:
        # Every container is asked first, so they wind down together, not in turn.
        stopping = [c for pool in self.pools.values() for c in pool.begin_close()]
        for container in stopping:
            container.stop()

    def _function_output(self, source: str, line: str) -> None:
        """A line a function printed: to the terminal, and its metrics to CloudWatch."""
        if self.metrics is not None and line.startswith("{") and '"_aws"' in line:
            with contextlib.suppress(ValueError):
                self.metrics.add(json.loads(line))
        self.console.function_line(source, line)

    def _access_line(self, method: str, path: str, status: int, elapsed_ms: float) -> None:
        path_only = path.split("?", 1)[0]
        line = f"{method} {path_only} -> {status} ({elapsed_ms:.0f} ms)"
        (self.console.warning if status >= 500 else self.console.info)("api", line)

    def _write_state(self, running: RunningStack) -> None:
        path = self.options.data_dir / STATE_FILE
        # Owner-only: it holds the database URL, which may carry a password.
        write_private(path, json.dumps(running.as_dict(), indent=2))
        self._exit.callback(path.unlink, missing_ok=True)

    def stop(self) -> None:
        self._warn_if_queued()
        self._exit.close()

    def _warn_if_queued(self) -> None:
        """moto keeps queues in memory: say what a stop loses, rather than lose it quietly."""
        if self.running is None or self.sqs is None:
            return
        from hookline.status import queue_depths

        for name, depth in queue_depths(self.sqs, self.running.resources.queues).items():
            waiting = sum(v for v in depth.values() if isinstance(v, int))
            if waiting:
                self.console.warning(
                    "local", f"{name} still holds {waiting} message(s); they end with this stop"
                )


@contextmanager
def running_stack(options: LocalOptions, console: Console) -> Iterator[RunningStack]:
    stack = LocalStack(options, console)
    running = stack.start()
    try:
        yield running
    finally:
        console.info("local", "stopping")
        stack.stop()
        console.info("local", "stopped")


def ready_line(options: LocalOptions, api_url: str) -> str:
    """What `hookline local` says once it serves, with commands that run as printed."""
    # The commands find the stack through its data folder: name it unless it is the default.
    folder: tuple[str, ...] = ()
    if options.data_dir.resolve() != (options.project / ".hookline").resolve():
        folder = ("--data-dir", _display(options.data_dir))
    send = hints.command("send", "stripe", "payment_intent.succeeded", *folder)
    return (
        f"ready: {api_url} (try `{send}`, then `{hints.command('status', *folder)}`); Ctrl-C stops"
    )


def serve(options: LocalOptions, console: Console, stop: threading.Event) -> None:
    with running_stack(options, console) as running:
        console.info("local", ready_line(options, running.api_url))
        stop.wait()
