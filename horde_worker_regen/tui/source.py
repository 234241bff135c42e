"""Where the terminal UI reads the worker: its dashboard's status API over HTTP.

The same snapshot as the web page (`/status.json`), the history when the worker keeps one
(`/history.json`), and the pause switch (POST `/pause`, `/resume`). Every failure becomes one
`StatusUnavailable` with a reason an operator can act on; the token never appears in it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import aiohttp

Snapshot = dict[str, Any]
History = dict[str, Any]
REQUEST_TIMEOUT_S = 5.0


class StatusUnavailable(Exception):
    """The worker could not be read (not running, unreachable, token refused, an answer not understood)."""


class StatusSource(Protocol):
    """What the terminal UI reads and switches."""

    @property
    def describe(self) -> str:
        """Where the worker is read from, as the operator would name it."""
        ...

    async def status(self) -> Snapshot:
        """The worker's snapshot now; StatusUnavailable when it cannot be read."""
        ...

    async def history(self, since: float | None) -> History | None:
        """The history points newer than `since` (unix seconds), or None when the worker keeps none."""
        ...

    async def set_paused(self, paused: bool) -> bool:
        """Pause or resume popping; returns whether popping is paused now."""
        ...

    async def close(self) -> None:
        """Release what the source holds (its HTTP connections)."""
        ...


class HttpStatusSource:
    """The status API of a worker's dashboard, at `url`, with its `dashboard_token` if it needs one."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self._base = url if url.endswith("/") else url + "/"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    @property
    def describe(self) -> str:
        return self._base

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop it was made on (the app's).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def _request(self, method: str, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            async with self._client().request(method, self._base + path, params=params) as response:
                if response.status == 404:
                    return None
                if response.status in (401, 403):
                    raise StatusUnavailable(_refusal(response.status, await response.text()))
                if response.status >= 400:
                    raise StatusUnavailable(f"{path} answered HTTP {response.status}")
                return await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as error:
            raise StatusUnavailable(_described(error)) from None

    async def status(self) -> Snapshot:
        answer = await self._request("GET", "status.json")
        if not isinstance(answer, dict):
            raise StatusUnavailable("status.json is not there: is this the worker's dashboard?")
        return answer

    async def history(self, since: float | None) -> History | None:
        answer = await self._request("GET", "history.json", None if since is None else {"since": repr(since)})
        return answer if isinstance(answer, dict) else None

    async def set_paused(self, paused: bool) -> bool:
        answer = await self._request("POST", "pause" if paused else "resume")
        if not isinstance(answer, dict):
            raise StatusUnavailable("this worker's dashboard has no pause switch")
        return bool(answer.get("paused"))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _refusal(status: int, text: str) -> str:
    if status == 401:
        return "the dashboard asks for its token: pass --token, or set dashboard_token in bridgeData"
    return f"the dashboard refused the request (HTTP 403): {text.strip()[:200]}"


def _described(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "no answer in time"
    if isinstance(error, aiohttp.ClientConnectorError):
        if isinstance(error.os_error, ConnectionRefusedError):
            return "cannot connect: nothing listens there (is the worker running, its dashboard enabled?)"
        return f"cannot connect: {error.os_error.strerror or type(error.os_error).__name__}"
    if isinstance(error, aiohttp.ContentTypeError | ValueError):
        return "the answer is not JSON: is this the worker's dashboard?"
    return f"{type(error).__name__}: {error}"
