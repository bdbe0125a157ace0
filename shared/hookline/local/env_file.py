"""events/env.json for `sam local invoke --env-vars`: the functions' environment, for Docker.

`sam local invoke` runs a function in a container, where 127.0.0.1 (and
0.0.0.0) is the container itself and a Unix socket of this machine does not
exist: every address of the local stack is rewritten to host.docker.internal,
and the database is the embedded server's TCP listener (with its password).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from hookline import template
from hookline.files import write_private

CONTAINER_HOST = "host.docker.internal"
# Addresses that, seen from a container, are not this machine.
_THIS_MACHINE = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", "*", ""})  # noqa: S104
# Docker Engine on Linux defines host.docker.internal only when asked to.
LINUX_ADD_HOST = "--add-host host.docker.internal:host-gateway"


def _host_of(netloc: str) -> tuple[str, str, str]:
    """(userinfo@, host, :port) of a URL's netloc; the host without IPv6 brackets."""
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        return userinfo + at, host, rest
    host, colon, port = hostport.partition(":")
    return userinfo + at, host, colon + port


def container_url(url: str) -> str:
    """`url` as a container reaches it: a host of this machine becomes host.docker.internal."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    userinfo, host, port = _host_of(parts.netloc)
    if host.lower() not in _THIS_MACHINE:
        return url
    return urlunsplit(parts._replace(netloc=f"{userinfo}{CONTAINER_HOST}{port}"))


def container_database_url(state: Mapping[str, Any]) -> str | None:
    """A DATABASE_URL a container can use, or None when the database is a Unix socket only."""
    tcp = state.get("database_tcp_url")
    if tcp:
        return container_url(str(tcp))
    url = str(state.get("database_url") or "")
    host = str(conninfo_to_dict(url).get("host") or "") if url else ""
    if not host or host.startswith("/"):
        return None  # libpq's default, or a named socket directory
    if host.lower() not in _THIS_MACHINE:
        return url
    return container_url(url) if "://" in url else make_conninfo(url, host=CONTAINER_HOST)


def _is_local_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and container_url(value) != value


def container_notes(state: Mapping[str, Any] | None) -> list[str]:
    """What to do so that a container can reach the stack, one line each (none: nothing)."""
    if state is None:
        return [
            "no local stack is running: env.json holds <Resource> placeholders; "
            "fill them in from a deployed stack's outputs"
        ]
    notes = []
    if container_database_url(state) is None:
        notes.append(
            "DATABASE_URL is a Unix socket of this machine, which a container cannot reach: "
            "give the local stack a TCP one (--database-url postgresql://USER:PASSWORD@HOST/DB), "
            "or none: the embedded server listens on TCP too"
        )
    api_host = _host_of(urlsplit(str(state.get("api_url", ""))).netloc)[1]
    if api_host in ("127.0.0.1", "localhost", "::1"):
        notes.append(
            f"the local stack listens on {api_host} only: Docker Desktop reaches it through "
            f"{CONTAINER_HOST}; with Docker Engine on Linux, start it with --host 0.0.0.0 "
            f"and add `{LINUX_ADD_HOST}` to `sam local invoke`"
        )
    else:
        notes.append(f"with Docker Engine on Linux, add `{LINUX_ADD_HOST}` to `sam local invoke`")
    return notes


def write_env_file(path: Path, state: Mapping[str, Any] | None, project: Path) -> Path:
    """events/env.json for `sam local invoke --env-vars`, one object per function.

    With the local stack running: its resources, reached from Docker through
    host.docker.internal. Without: the template's variables with `<Resource>`
    placeholders to fill in from a deployed stack's outputs.
    """
    document: dict[str, dict[str, str]] = {}
    if state is not None:
        endpoint = container_url(str(state["endpoint_url"]))
        for name, spec in state["functions"].items():
            environment = {
                key: container_url(str(value)) if _is_local_url(str(value)) else str(value)
                for key, value in spec["environment"].items()
            }
            if "DATABASE_URL" in environment:
                own = environment["DATABASE_URL"]
                # The function's own: a --parameter-overrides DatabaseUrl= may name another.
                same = own == state.get("database_url")
                reachable = container_database_url(
                    {"database_url": own, "database_tcp_url": state.get("database_tcp_url")}
                    if same
                    else {"database_url": own}
                )
                environment["DATABASE_URL"] = reachable or environment["DATABASE_URL"]
            separate = {
                f"AWS_ENDPOINT_URL_{service.upper()}": container_url(str(url))
                for service, url in (state.get("service_endpoints") or {}).items()
            }
            document[name] = {**environment, "AWS_ENDPOINT_URL": endpoint, **separate}
    else:
        loaded = template.load(project / "template.yaml")
        resolver = template.Resolver(
            loaded,
            refs={n: f"<{n}>" for n in loaded["Resources"]},
            placeholder_attributes=True,
        )
        for name, found in loaded["Resources"].items():
            if found["Type"] == "AWS::Serverless::Function":
                document[name] = template.function_environment(loaded, name, resolver)
    for environment in document.values():
        # Square's URL is derived from the event's domain, as in AWS.
        environment.pop("SQUARE_NOTIFICATION_URL", None)
    # Owner-only, like the local stack's state file: it holds DATABASE_URL.
    write_private(path, json.dumps(document, indent=2) + "\n")
    return path
