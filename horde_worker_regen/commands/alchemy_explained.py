"""What `check-config` says of the alchemist: the roles, its name, each form as resolved, offered at start or why not.

`explain_alchemy` builds the structured answer (tests read it); `render_alchemy` writes it as the YAML
comments check-config prints. "Offered at start" is what the alchemist would ask the horde for once
the worker serves: the same rules (`scheduling.alchemy.unserved_reason`) over what this machine has
now. A level-13 post-processor whose files are not on disk yet (or strip_background, until rembg's
u2net.onnx is) is not offered until the worker has downloaded and verified them, and it also needs
every inference process to load it, which only a running worker can tell.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.roles import served_form_names
from horde_worker_regen.horde.alchemy_wire import max_tiles_for
from horde_worker_regen.models.downloads import Downloader
from horde_worker_regen.models.optional_models import optional_kinds
from horde_worker_regen.models.post_processor_files import BACKGROUND_REMOVAL, MANAGED_POST_PROCESSORS
from horde_worker_regen.models.post_processor_store import PostProcessorDownloads, wanted_post_processors
from horde_worker_regen.scheduling.alchemy import (
    ANALYSIS_FORMS_OF_SAFETY_BACKEND,
    FormAvailability,
    FormSupply,
    unserved_reason,
)

LEVEL_13_TO_DOWNLOAD = (
    "a level-13 post-processor whose files are not on disk yet: offered once the worker has downloaded and "
    "verified them (and every inference process can load it)"
)
LEVEL_13_SKIPPED = "a level-13 post-processor that models_to_skip names: its files are never downloaded"
BACKGROUND_REMOVAL_TO_DOWNLOAD = (
    "strip_background, whose rembg model u2net.onnx is not on disk yet: offered once the worker has downloaded and "
    "verified it (and every inference process can run rembg)"
)
BACKGROUND_REMOVAL_SKIPPED = "strip_background, which models_to_skip names: its model u2net.onnx is never downloaded"


@dataclass(frozen=True)
class AlchemyExplained:
    """The alchemist's settings as the worker would start with them."""

    roles: tuple[str, ...]  # "dreamer" (image jobs), "alchemist" (alchemy forms)
    alchemist_name: str | None  # None: alchemy is off
    forms: tuple[FormAvailability, ...]  # every configured form (horde names), offered at start or why not
    settings: tuple[str, ...]  # what each alchemist setting does here, one line each
    notes: tuple[str, ...] = ()  # what turned post-processing off, if anything

    @property
    def offered(self) -> tuple[str, ...]:
        """The forms the alchemist would ask for at start."""
        return tuple(form.form for form in self.forms if form.offered)


async def post_processors_on_disk(data: BridgeData) -> frozenset[str]:
    """The managed post-processors (level 13, strip_background) whose files are on disk and verified now
    (nothing is hashed or fetched)."""
    if data.inference_backend == "fake":
        return MANAGED_POST_PROCESSORS  # it never loads one: every name counts as ready, as in the worker
    async with aiohttp.ClientSession() as session:  # the store's downloader is not used to read the manifest
        return PostProcessorDownloads(data, Downloader(session)).ready


def explain_alchemy(data: BridgeData, managed_on_disk: frozenset[str]) -> AlchemyExplained:
    """The roles, and with alchemy on, every form as the worker would offer it at start."""
    roles = tuple(role for role in ("dreamer", "alchemist") if getattr(data, role))
    if not data.alchemist:
        return AlchemyExplained(roles, None, (), ("alchemy is off: set alchemist: true to serve alchemy forms",))
    kinds = optional_kinds(data)
    supply = FormSupply(
        analysis=ANALYSIS_FORMS_OF_SAFETY_BACKEND.get(data.safety_backend, frozenset()),
        caption_enabled=data.alchemy_caption_enabled,
        post_processing=kinds.post_processing,
        managed=managed_on_disk,
    )
    wanted = set(wanted_post_processors(data)) if data.inference_backend != "fake" else None
    forms = tuple(_at_start(form, supply, wanted) for form in served_form_names(data.forms))
    post_processing_notes = tuple(note for note in kinds.notes if note.startswith("allow_post_processing"))
    return AlchemyExplained(roles, data.alchemist_name, forms, _settings(data), post_processing_notes)


def _at_start(form: str, supply: FormSupply, wanted: set[str] | None) -> FormAvailability:
    """`wanted`: the managed names whose files the worker fetches (None: the backend needs no files)."""
    reason = unserved_reason(form, supply)
    if reason is not None and form in MANAGED_POST_PROCESSORS and supply.post_processing:
        skipped = wanted is not None and form not in wanted
        if form == BACKGROUND_REMOVAL:
            reason = BACKGROUND_REMOVAL_SKIPPED if skipped else BACKGROUND_REMOVAL_TO_DOWNLOAD
        else:
            reason = LEVEL_13_SKIPPED if skipped else LEVEL_13_TO_DOWNLOAD
    return FormAvailability(form, reason)


def _settings(data: BridgeData) -> tuple[str, ...]:
    concurrent = (
        "alchemy_allow_concurrent: true: forms run beside image jobs, which go first (a post-processor takes only an "
        "idle inference process no image job waits for; an analysis form waits for the image checks)"
        if data.alchemy_allow_concurrent
        else "alchemy_allow_concurrent: false: forms are asked for only while no image job is held"
    )
    return (
        f"max_tiles: {max_tiles_for(data.max_power)} (from max_power {data.max_power}): the horde hands out no form "
        "whose source image has more 512x512 tiles",
        f"alchemy_max_concurrency: {data.alchemy_max_concurrency} form(s) held at once per kind (analysis forms in "
        "the safety process, post-processors on idle inference processes)",
        concurrent,
        "each form is submitted within 3 minutes of its pop, or reported faulted before then so the horde re-queues "
        "it; the fault breaker withdraws a form that keeps failing",
    )


def render_alchemy(explained: AlchemyExplained) -> str:
    """The explanation as YAML comments."""
    roles = {
        ("dreamer",): "images only",
        ("alchemist",): "alchemy only",
        ("dreamer", "alchemist"): "images and alchemy",
    }
    lines = [f"# Roles: {roles.get(explained.roles, 'none')}."]
    if explained.alchemist_name is not None:
        offered, forms = explained.offered, explained.forms
        lines.append(
            f"# Alchemist: {explained.alchemist_name!r} (a worker of its own on the horde), "
            f"{len(offered)} of {len(forms)} configured forms offered at start:"
        )
        lines.append(f"#   offered: {', '.join(offered) or 'none'}")
        reasons = dict.fromkeys(form.reason for form in forms if form.reason is not None)
        for reason in reasons:
            names = ", ".join(form.form for form in forms if form.reason == reason)
            lines.append(f"#   not offered, {reason}: {names}")
    lines += [f"#   {line}" for line in explained.settings]
    lines += [f"#   note: {note}" for note in explained.notes]
    return "\n".join(lines)
