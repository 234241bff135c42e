"""Helpers of the alchemist's tests: a worker folder with the alchemist on, source images, form results."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from horde_worker_regen.localhorde.alchemy_entities import InterrogationForm
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.testing import RunningLocalHorde
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET
from tests.worker_support import worker_folder

ALCHEMIST = "Test Alchemist"
WAIT_S = 60.0


def png(width: int = 96, height: int = 64) -> bytes:
    """A real PNG of that size."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 140, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def alchemist_folder(tmp_path: Path, horde: RunningLocalHorde, owner: User, **settings: Any) -> Path:
    """A worker folder (fake backends) with the alchemist on, serving every form by default."""
    defaults: dict[str, Any] = {"alchemist": True, "alchemist_name": ALCHEMIST, "alchemy_caption_enabled": True}
    return worker_folder(tmp_path, horde, owner, **(defaults | settings))


def stored_result(horde: RunningLocalHorde, form: InterrogationForm) -> Image.Image:
    """The WebP image the alchemist uploaded for a post-processor form."""
    stored = horde.state.objects.get(GENERATIONS_BUCKET, f"{form.id}.webp")
    assert stored is not None, f"nothing uploaded for form {form.id}"
    image = Image.open(io.BytesIO(stored.data))
    image.load()
    return image


def form_named(horde: RunningLocalHorde, request_id: str, name: str) -> InterrogationForm:
    """The request's form of that name."""
    [form] = [form for form in horde.forms_of(request_id) if form.name == name]
    return form
