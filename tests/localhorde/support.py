"""Helpers shared by the local horde tests."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient

from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User, WaitingPrompt, Worker
from horde_worker_regen.localhorde.requester import queue_request

REGEN_AGENT = "AI Horde Worker reGen:13.0.0:https://example.invalid/horde-worker-regen"
# A tiny RIFF/WEBP-looking payload: the sink stores bytes, it does not decode them.
WEBP_BYTES = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
WEBP_B64 = base64.b64encode(WEBP_BYTES).decode()

Client = TestClient[Any, Any]


def pop_body(name: str = "worker-1", **overrides: Any) -> dict[str, Any]:
    """A pop body with every field explicit, as reGen sends it."""
    body: dict[str, Any] = {
        "name": name,
        "models": ["Deliberate"],
        "bridge_agent": REGEN_AGENT,
        "amount": 1,
        "max_pixels": 1048576,
        "nsfw": True,
        "blacklist": [],
        "threads": 1,
        "require_upfront_kudos": False,
        "priority_usernames": [],
        "allow_img2img": True,
        "allow_painting": True,
        "allow_unsafe_ipaddr": True,
        "allow_post_processing": True,
        "allow_controlnet": True,
        "allow_sdxl_controlnet": True,
        "allow_lora": True,
        "limit_max_steps": False,
        "extra_slow_worker": False,
    }
    body.update(overrides)
    return body


async def pop(
    client: Client, user: User | str, body: dict[str, Any] | None = None, **overrides: Any
) -> tuple[int, Any]:
    """POST a pop; returns (status, JSON body)."""
    key = user if isinstance(user, str) else user.api_key
    resp = await client.post("/api/v2/generate/pop", json=body or pop_body(**overrides), headers={"apikey": key})
    return resp.status, await resp.json()


async def submit(client: Client, user: User | str, job_id: str, **fields: Any) -> tuple[int, Any]:
    """POST a submit for one id (R2, state ok, seed 1 unless overridden)."""
    key = user if isinstance(user, str) else user.api_key
    body = {"id": job_id, "generation": "R2", "state": "ok", "seed": 1, **fields}
    resp = await client.post("/api/v2/generate/submit", json=body, headers={"apikey": key})
    return resp.status, await resp.json()


def queue(horde: LocalHorde, user: User, prompt: str = "a red fox in snow", **body: Any) -> WaitingPrompt:
    """Queue a request through the requester's validation (nsfw off unless given)."""
    body.setdefault("nsfw", False)
    return queue_request(horde, user, {"prompt": prompt, **body})


def path_of(url: str) -> str:
    """The path and query of an issued URL (the test client talks to the app directly)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def worker_named(horde: LocalHorde, name: str = "worker-1") -> Worker:
    """A worker that must exist."""
    worker = horde.worker(name)
    assert worker is not None, name
    return worker


def assert_error(got: tuple[int, Any], status: int, rc: str, message: str | None = None) -> None:
    """An error answer in the horde's `{"message", "rc"}` shape, with that status and rc (and message)."""
    got_status, body = got
    assert got_status == status, body
    assert isinstance(body, dict) and set(body) == {"message", "rc"}, body
    assert body["rc"] == rc, body
    assert isinstance(body["message"], str) and body["message"]
    if message is not None:
        assert body["message"] == message
