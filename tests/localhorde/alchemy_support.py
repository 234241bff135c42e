"""Helpers shared by the local horde's alchemy tests."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image

from horde_worker_regen.localhorde.alchemy_entities import AlchemistWorker, Interrogation
from horde_worker_regen.localhorde.alchemy_requests import queue_interrogation
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from tests.localhorde.support import REGEN_AGENT, Client, path_of

ALCHEMIST = "alchemist-1"
SOME_FORMS = ["caption", "interrogation", "nsfw", "RealESRGAN_x4plus", "strip_background"]


def png_bytes(width: int = 64, height: int = 64) -> bytes:
    """A real PNG of that size (the horde reads the header to count tiles)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_b64(width: int = 64, height: int = 64) -> str:
    """The same, base64 encoded as a requester sends it."""
    return base64.b64encode(png_bytes(width, height)).decode()


def ipop_body(name: str = ALCHEMIST, **overrides: Any) -> dict[str, Any]:
    """An interrogation pop body with every field explicit, as an alchemist sends it."""
    body: dict[str, Any] = {
        "name": name,
        "priority_usernames": [],
        "forms": list(SOME_FORMS),
        "amount": 1,
        "bridge_agent": REGEN_AGENT,
        "threads": 1,
        "max_tiles": 16,
    }
    body.update(overrides)
    return body


async def ipop(
    client: Client, user: User | str, body: dict[str, Any] | None = None, **overrides: Any
) -> tuple[int, Any]:
    """POST an interrogation pop; returns (status, JSON body)."""
    key = user if isinstance(user, str) else user.api_key
    resp = await client.post("/api/v2/interrogate/pop", json=body or ipop_body(**overrides), headers={"apikey": key})
    return resp.status, await resp.json()


async def isubmit(
    client: Client, user: User | str, form_id: Any, result: Any = None, state: str = "ok", **fields: Any
) -> tuple[int, Any]:
    """POST an interrogation submit (a caption result unless given)."""
    key = user if isinstance(user, str) else user.api_key
    body = {"id": form_id, "result": {"caption": "a red square"} if result is None else result, "state": state}
    body.update(fields)
    resp = await client.post("/api/v2/interrogate/submit", json=body, headers={"apikey": key})
    return resp.status, await resp.json()


async def upload(client: Client, r2_upload: str, data: bytes) -> int:
    """PUT bytes to an issued upload URL; returns the status."""
    resp = await client.put(path_of(r2_upload), data=data)
    return resp.status


def queue_alchemy(
    horde: LocalHorde,
    user: User,
    forms: Sequence[str | dict[str, Any]] = ("caption",),
    *,
    size: tuple[int, int] = (64, 64),
    safe_ip: bool = True,
    **fields: Any,
) -> Interrogation:
    """Queue an interrogation of a real PNG of `size` through the requester's validation."""
    body = {
        "forms": [{"name": f} if isinstance(f, str) else f for f in forms],
        "source_image": png_b64(*size),
        **fields,
    }
    return queue_interrogation(horde, user, body, safe_ip=safe_ip)


def alchemist_named(horde: LocalHorde, name: str = ALCHEMIST) -> AlchemistWorker:
    """An alchemist that must exist."""
    worker = horde.worker(name)
    assert isinstance(worker, AlchemistWorker), name
    return worker
