"""Checking, before any job is taken, that the API key belongs to a user who may run a worker.

A horde that does not answer (down, unreachable, failing with 5xx or rate limiting) is not a refusal:
`HordeUnreachable` lets the caller start anyway and check again with backoff.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp
from horde_sdk.ai_horde_api.apimodels import FindUserRequest, UserDetailsResponse
from pydantic import ValidationError

from horde_worker_regen import __version__
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.reasons import plain_reason

CLIENT_AGENT = f"horde-worker-regen:{__version__}:https://github.com/Haidra-Org/horde-worker-reGen"
IDENTITY_TIMEOUT_S = 30.0


class IdentityError(RuntimeError):
    """The horde refused the API key, or could not be asked; the message says what to do."""


class HordeUnreachable(IdentityError):
    """The horde could not be asked (no answer, 5xx, 429): not a verdict on the key."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"The horde at {host} cannot be reached ({reason})")
        self.host = host
        self.reason = reason


def horde_host(horde_url: str) -> str:
    """The horde's host (and port) as the operator wrote it, for messages."""
    parts = urlsplit(horde_url)
    return parts.netloc or horde_url


async def find_user(data: BridgeData, session: aiohttp.ClientSession) -> UserDetailsResponse:
    """The owner of the configured API key, as the horde describes them."""
    try:
        request = FindUserRequest(apikey=data.api_key.get_secret_value())
    except ValidationError:
        # The error would quote the key; what the operator needs is what a key looks like.
        raise IdentityError(
            "The api_key is not an AI Horde API key (a key is 22 characters long). "
            "Copy yours again from https://aihorde.net/register."
        ) from None
    url = data.horde_url.rstrip("/") + request.get_api_endpoint_subpath()
    headers = {"apikey": data.api_key.get_secret_value(), "Client-Agent": CLIENT_AGENT}
    timeout = aiohttp.ClientTimeout(total=IDENTITY_TIMEOUT_S)
    try:
        async with session.get(url, headers=headers, timeout=timeout) as response:
            body = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        raise HordeUnreachable(horde_host(data.horde_url), plain_reason(error)) from None
    except ValueError:
        raise HordeUnreachable(horde_host(data.horde_url), "its answer was not JSON") from None
    if status >= 500 or status in (408, 429):
        raise HordeUnreachable(horde_host(data.horde_url), f"HTTP {status}")
    if status in (401, 404):
        raise IdentityError(
            f"The horde at {data.horde_url} does not recognise this api_key. "
            "Copy your key again from https://aihorde.net/register (it is 22 characters long)."
        )
    if status != 200:
        message = body.get("message", "") if isinstance(body, dict) else ""
        raise IdentityError(f"The horde answered find_user with HTTP {status}: {message}")
    try:
        return UserDetailsResponse.model_validate(body)
    except ValidationError as error:
        raise IdentityError(f"The horde's find_user answer was not understood: {error}") from None


def describe_user(user: UserDetailsResponse) -> str:
    """The line that tells the operator whose key this is and whether the horde trusts them."""
    trust = "trusted" if user.trusted else "not yet trusted (half of job kudos held in escrow)"
    return f"API key belongs to {user.username}: {user.kudos:,.0f} kudos, {trust}."
