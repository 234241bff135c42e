"""The demo's alchemy: one request for a few forms on a generated picture, queued and read back as a
requester does (`/v2/interrogate/async`, then `/v2/interrogate/status/{id}`).

A post-processor's result is the image the horde stores (its URL), saved as `alchemy/<form>.webp`; the
other forms' results go to `alchemy/results.json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ALCHEMY_FOLDER = "alchemy"


class FormsRefused(RuntimeError):
    """The local horde refused the demo's alchemy request."""


@dataclass
class FormsOutcome:
    """What became of the demo's forms."""

    asked: tuple[str, ...]
    done: list[str] = field(default_factory=list)
    saved: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The forms done, in words for the demo's last line."""
        return f"{len(self.done)} of {len(self.asked)} alchemy forms ({', '.join(self.asked)})"


async def queue_forms(
    session: aiohttp.ClientSession, api_url: str, api_key: str, forms: Sequence[str], source_b64: str
) -> str:
    """Ask for every form on the picture in one request; its id."""
    body = {"forms": [{"name": name} for name in forms], "source_image": source_b64}
    async with session.post(f"{api_url}/v2/interrogate/async", json=body, headers={"apikey": api_key}) as response:
        answer = await response.json()
        if response.status != 202:
            raise FormsRefused(f"the local horde refused the alchemy request: {answer}")
    return str(answer["id"])


async def collect_forms(
    session: aiohttp.ClientSession, api_url: str, request_id: str, asked: Sequence[str], output: Path
) -> FormsOutcome:
    """Read the request's status as a requester would and save each result; what was done and what was not."""
    outcome = FormsOutcome(tuple(asked))
    async with session.get(f"{api_url}/v2/interrogate/status/{request_id}") as response:
        status = await response.json()
    folder = output / ALCHEMY_FOLDER
    results: dict[str, Any] = {}
    for form in status.get("forms", []):
        name, result = form.get("form"), form.get("result") or {}
        if form.get("state") != "done":
            outcome.problems.append(f"alchemy form {name}: {form.get('state')}")
            continue
        outcome.done.append(str(name))
        value = result.get(name)
        if isinstance(value, str) and value.startswith("http"):  # a post-processor's image, stored by the horde
            outcome.saved.append(await _save(session, value, folder / f"{name}.webp"))
        else:
            results[str(name)] = value
    if results:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        outcome.saved.append(folder / "results.json")
    return outcome


async def _save(session: aiohttp.ClientSession, url: str, path: Path) -> Path:
    async with session.get(url) as response:
        data = await response.read()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
