"""Checking, before any job is taken, that the API key belongs to a user who may run a worker."""

from __future__ import annotations

import asyncio

import aiohttp
from horde_sdk.ai_horde_api.apimodels import FindUserRequest, UserDetailsResponse
from pydantic import ValidationError

from horde_worker_regen import __version__
from horde_worker_regen.config.bridge_data import BridgeData

CLIENT_AGENT = f"horde-worker-regen:{__version__}:https://github.com/Haidra-Org/horde-worker-reGen"
IDENTITY_TIMEOUT_S = 30.0


class IdentityError(RuntimeError):
    """The horde refused the API key, or could not be asked; the message says what to do."""


async def find_user(data: BridgeData, session: aiohttp.ClientSession) -> UserDetailsResponse:
    """The owner of the configured API key, as the horde describes them."""
    request = FindUserRequest(apikey=data.api_key.get_secret_value())
    url = data.horde_url.rstrip("/") + request.get_api_endpoint_subpath()
    headers = {"apikey": data.api_key.get_secret_value(), "Client-Agent": CLIENT_AGENT}
    timeout = aiohttp.ClientTimeout(total=IDENTITY_TIMEOUT_S)
    try:
        async with session.get(url, headers=headers, timeout=timeout) as response:
            body = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
        raise IdentityError(
            f"Could not reach the horde at {data.horde_url} ({error or type(error).__name__}). "
            "Check horde_url and this machine's network."
        ) from None
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
