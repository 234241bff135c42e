"""The worker's side of the AI Horde API over aiohttp, with horde_sdk's request and response models.

One method per call the pipeline makes: `pop`, `submit`, `upload` (PUT to a presigned R2 URL) and
`download` (source images), the alchemist's `interrogate_pop` and `interrogate_submit` (with this
worker's own models, `alchemy_wire`), the two worker-record calls `remove_maintenance_on_init` needs
(`worker_id_by_name`, `set_maintenance`), `worker_record` (the kudos the horde credited) and
`heartbeat` (the horde's version, for the dashboard). Each
returns parsed data or raises `HordeRequestError`, which `horde.errors.classify` turns into a
reaction; none of them retries by itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from horde_sdk.ai_horde_api.apimodels import ImageGenerateJobPopRequest, ImageGenerationJobSubmitRequest
from yarl import URL

from horde_worker_regen.horde.alchemy_wire import FormSubmitBody, InterrogatePopRequest
from horde_worker_regen.horde.errors import HordeRequestError
from horde_worker_regen.horde.identity import CLIENT_AGENT
from horde_worker_regen.horde.reasons import plain_reason
from horde_worker_regen.horde.retry_after import parse_retry_after
from horde_worker_regen.horde.url_guard import UrlGuard

POP_TIMEOUT_S = 30.0
SUBMIT_TIMEOUT_S = 20.0
WORKER_TIMEOUT_S = 20.0
UPLOAD_TIMEOUT_S = 30.0
DOWNLOAD_TIMEOUT_S = 30.0
# Fields of the SDK's request models that are headers or SDK-only, never part of the JSON body.
_NOT_IN_BODY = {"apikey", "accept", "client_agent", "bridge_version"}
_CHUNK = 64 * 1024
MAX_REDIRECTS = 5
# The horde's error text reaches the operator's log: kept to one bounded line.
MAX_ERROR_TEXT = 300
_REDIRECTS = {301, 302, 303, 307, 308}


class HordeClient:
    """Calls the horde at `horde_url` with the worker owner's API key."""

    def __init__(self, session: aiohttp.ClientSession, horde_url: str, api_key: str) -> None:
        self._session = session
        self._base = horde_url.rstrip("/")
        self._headers = {"apikey": api_key, "Client-Agent": CLIENT_AGENT}

    @staticmethod
    def body_of(request: ImageGenerateJobPopRequest | ImageGenerationJobSubmitRequest) -> dict[str, Any]:
        """The JSON body of an SDK request model: every set field, headers and nulls left out."""
        return request.model_dump(mode="json", by_alias=True, exclude=_NOT_IN_BODY, exclude_none=True)

    async def pop(self, request: ImageGenerateJobPopRequest) -> Any:
        """`POST /v2/generate/pop`; the decoded answer whatever its shape, or `NotJson` (`horde.pop` reads it)."""
        url = self._base + request.get_api_endpoint_subpath()
        return await self._request("POST", url, self.body_of(request), POP_TIMEOUT_S)

    async def submit(self, request: ImageGenerationJobSubmitRequest) -> float:
        """`POST /v2/generate/submit` for one id; the reward."""
        url = self._base + request.get_api_endpoint_subpath()
        answer = await self._post_json(url, self.body_of(request), SUBMIT_TIMEOUT_S)
        reward = answer.get("reward", 0.0)
        return float(reward) if isinstance(reward, int | float) else 0.0

    async def interrogate_pop(self, request: InterrogatePopRequest) -> Any:
        """`POST /v2/interrogate/pop`; the decoded answer whatever its shape (`alchemy_wire` reads it)."""
        return await self._request("POST", f"{self._base}/v2/interrogate/pop", request.body(), POP_TIMEOUT_S)

    async def interrogate_submit(self, body: FormSubmitBody) -> float:
        """`POST /v2/interrogate/submit` for one form; the reward."""
        answer = await self._post_json(f"{self._base}/v2/interrogate/submit", body.body(), SUBMIT_TIMEOUT_S)
        reward = answer.get("reward", 0.0)
        return float(reward) if isinstance(reward, int | float) else 0.0

    async def upload(self, url: str, data: bytes) -> None:
        """PUT one WebP image to its presigned upload URL."""
        timeout = aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT_S)
        try:
            async with self._session.put(
                url, data=data, headers={"Content-Type": "image/webp"}, timeout=timeout
            ) as response:
                if response.status >= 300:
                    text = _one_line(await response.text(errors="replace"))
                    raise HordeRequestError(response.status, None, f"upload refused: {text}", _retry_after_of(response))
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise HordeRequestError(None, None, f"upload failed: {plain_reason(error)}") from None

    async def download(
        self, url: str, max_bytes: int, *, timeout_s: float = DOWNLOAD_TIMEOUT_S, guard: UrlGuard | None = None
    ) -> bytes:
        """GET an input image: every redirect hop checked by `guard`, at most `max_bytes` read while
        streaming, the whole download (hops and body) within `timeout_s`. Raises `HordeRequestError`,
        or `UnsafeUrl` for a URL (or redirect) the guard refuses."""
        guard = guard or UrlGuard()
        try:
            async with asyncio.timeout(timeout_s):
                return await self._download_hops(URL(url), max_bytes, guard)
        except TimeoutError:
            raise HordeRequestError(None, None, f"download took longer than {timeout_s:.0f}s") from None
        except aiohttp.ClientError as error:
            raise HordeRequestError(None, None, f"download failed: {plain_reason(error)}") from None

    async def _download_hops(self, url: URL, max_bytes: int, guard: UrlGuard) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            await guard.check(url)
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status in _REDIRECTS and "Location" in response.headers:
                    url = url.join(URL(response.headers["Location"]))
                    continue
                if response.status != 200:
                    raise HordeRequestError(response.status, None, f"download refused with HTTP {response.status}")
                if (response.content_length or 0) > max_bytes:
                    raise HordeRequestError(413, None, f"image of {response.content_length} bytes is too large")
                return await _read_capped(response, max_bytes)
        raise HordeRequestError(310, None, f"more than {MAX_REDIRECTS} redirects")

    async def worker_id_by_name(self, name: str) -> str | None:
        """`GET /v2/workers/name/{name}`: the id of the worker with exactly that name; None if there is none yet."""
        url = f"{self._base}/v2/workers/name/{quote(name, safe='')}"
        try:
            answer = await self._request_json("GET", url, None, WORKER_TIMEOUT_S)
        except HordeRequestError as error:
            if error.status == 404:
                return None
            raise
        worker_id = answer.get("id")
        return str(worker_id) if worker_id else None

    async def worker_record(self, worker_id: str) -> dict[str, Any]:
        """`GET /v2/workers/{id}`: the worker's record (kudos_rewards, kudos_details, maintenance, ...)."""
        url = f"{self._base}/v2/workers/{quote(worker_id, safe='')}"
        return await self._request_json("GET", url, None, WORKER_TIMEOUT_S)

    async def heartbeat(self) -> dict[str, Any]:
        """`GET /v2/status/heartbeat`: the horde's status (`version`, `message`, ...)."""
        return await self._request_json("GET", f"{self._base}/v2/status/heartbeat", None, WORKER_TIMEOUT_S)

    async def set_maintenance(self, worker_id: str, enabled: bool) -> dict[str, Any]:
        """`PUT /v2/workers/{id} {"maintenance": enabled}` with the owner's key; the horde's answer."""
        url = f"{self._base}/v2/workers/{quote(worker_id, safe='')}"
        return await self._request_json("PUT", url, {"maintenance": enabled}, WORKER_TIMEOUT_S)

    async def _post_json(self, url: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        return await self._request_json("POST", url, body, timeout_s)

    async def _request_json(
        self, method: str, url: str, body: dict[str, Any] | None, timeout_s: float
    ) -> dict[str, Any]:
        answer = await self._request(method, url, body, timeout_s)
        return answer if isinstance(answer, dict) else {}

    async def _request(self, method: str, url: str, body: dict[str, Any] | None, timeout_s: float) -> Any:
        """The decoded JSON answer (any shape; `NotJson` if it is not JSON); HordeRequestError for an error."""
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._session.request(
                method, url, json=body, headers=self._headers, timeout=timeout
            ) as response:
                answer = await _decoded(response)
                if response.status >= 400:
                    raise _error_from(response, answer if isinstance(answer, dict) else {})
                return answer
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise HordeRequestError(None, None, f"no answer from {_host_of(url)}: {plain_reason(error)}") from None


def _host_of(url: str) -> str:
    """The host (and port) of a request's URL: what the operator needs to know, without the path."""
    return URL(url).raw_authority or url


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise HordeRequestError(413, None, f"image larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class NotJson:
    """An answer body that is not JSON (or nests too deeply to decode): only its size is kept."""

    size: int


async def _decoded(response: aiohttp.ClientResponse) -> Any:
    body = await response.read()
    try:
        return json.loads(body) if body else {}
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the decoder can follow
        return NotJson(len(body))


def _error_from(response: aiohttp.ClientResponse, answer: dict[str, Any]) -> HordeRequestError:
    message = str(answer.get("message") or response.reason or "")
    if isinstance(answer.get("errors"), dict):
        message = f"{message} {answer['errors']}"
    rc = answer.get("rc")
    rc = _one_line(rc) if isinstance(rc, str) else None
    return HordeRequestError(response.status, rc, _one_line(message), _retry_after_of(response))


def _retry_after_of(response: aiohttp.ClientResponse) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"), time.time())


def _one_line(text: str) -> str:
    """Untrusted text fit for a log line: control characters (newlines too) blanked, length bounded."""
    flat = "".join(char if char.isprintable() else " " for char in text[: MAX_ERROR_TEXT + 1])
    return flat if len(flat) <= MAX_ERROR_TEXT else flat[:MAX_ERROR_TEXT] + "…"
