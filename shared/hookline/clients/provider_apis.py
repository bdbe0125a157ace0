"""The one way the consumer reads a provider's API: the full resource behind a thin event.

Each provider module declares its API (`ProviderApi`: where, which credential,
how it is sent) and builds its reads (`ApiRead`); this module calls them, one
`JsonHttpClient` per provider, all with the consumer's timeout and retry profile.
An unreachable or failing API raises ProviderApiUnavailable (transient: the
event waits in SQS, however long the outage) and refused credentials
ConfigurationError (also transient, and alarmed); neither ever parks an event.
Credentials live in the webhook secret and are read on use, so a rotation needs
no redeploy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hookline.clients.http import JsonHttpClient
from hookline.deadline import Deadline
from hookline.providers.base import ApiRead, ProviderApi


class ProviderApis:
    def __init__(
        self,
        credential: Callable[[str], str],
        urls: Mapping[str, str] | None = None,
        **http: Any,
    ) -> None:
        """`credential(key)` reads a key of the webhook secret; `urls` overrides a
        provider's production URL (by provider name); `http` tunes JsonHttpClient."""
        self._credential = credential
        self._urls = dict(urls or {})
        self._http = http
        self._clients: dict[str, JsonHttpClient] = {}

    def url(self, api: ProviderApi) -> str:
        return self._urls.get(api.provider) or api.default_url

    def _client(self, api: ProviderApi) -> JsonHttpClient:
        client = self._clients.get(api.provider)
        if client is None:
            client = JsonHttpClient(api.provider, self.url(api), self._headers(api), **self._http)
            self._clients[api.provider] = client
        return client

    def _headers(self, api: ProviderApi) -> Callable[[], Mapping[str, str]]:
        credential = api.credential
        if credential is None:
            return dict
        return lambda: {"Authorization": api.authorization.format(self._credential(credential))}

    def read(
        self, api: ProviderApi, request: ApiRead, *, deadline: Deadline | None = None
    ) -> dict[str, Any]:
        """The JSON object `api` answers to `request`, within `deadline`."""
        client = self._client(api)
        answers = api.answer_statuses
        if request.body is not None:
            return client.search(
                *request.path, body=request.body, deadline=deadline, answers=answers
            )
        return client.get(
            *request.path, params=request.params or None, deadline=deadline, answers=answers
        )
