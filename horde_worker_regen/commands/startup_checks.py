"""The start-up refusals `run` and `check-config` share, so that a valid configuration is one that starts.

Everything here is decided before the horde is asked anything: the API key and worker name as
written, the backends, the models (resolved against the model reference, fresh or cached), the
custom models' files and the GPU settings. The horde's own verdict on the key (`find_user`) stays
in `run`, as does fetching the safety model.

The disk check is not a refusal: the worker serves what is on disk whatever the space left, and
each download refuses itself when its file cannot fit. It says, once, what the image models and
post-processors still to download need and whether that fits (a warning when it does not).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from horde_worker_regen.config.bridge_data import DEFAULT_WORKER_NAME, BridgeData
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.config.roles import DEFAULT_ALCHEMIST_NAME
from horde_worker_regen.devices.discovery import DeviceInfo, discover_devices, fake_devices
from horde_worker_regen.devices.plan import plan_slots
from horde_worker_regen.inference.capabilities import BackendUnavailable, capabilities_of
from horde_worker_regen.models.background import backend_needs_model_files
from horde_worker_regen.models.custom import custom_model_file_problems
from horde_worker_regen.models.disk_need import DiskNeed, disk_need, log_disk_need
from horde_worker_regen.models.meta_instructions import MetaInstructionError, ModelSelection
from horde_worker_regen.models.reference_cache import ReferenceUnavailable
from horde_worker_regen.models.selection import CustomModelClash, select_models

PUBLIC_HORDE_HOSTS = ("aihorde.net", "stablehorde.net")


class StartupError(RuntimeError):
    """A start-up step failed; the message tells the operator what to change."""


class ModelsUnresolved(StartupError):
    """The configured models cannot be resolved (no reference, a bad meta-instruction) or leave none to serve."""


def is_public_horde(horde_url: str) -> bool:
    """Whether `horde_url` is the public AI Horde (or its old name), where real requesters wait."""
    host = (urlsplit(horde_url).hostname or "").lower()
    return any(host == public or host.endswith("." + public) for public in PUBLIC_HORDE_HOSTS)


def _refusal(problems: list[str]) -> str:
    """One problem as it is; several as a list, so that one edit fixes them all."""
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems:\n" + "\n".join(f"  - {problem}" for problem in problems)


def identity_problems(data: BridgeData) -> list[str]:
    """The key and name as written: the horde refuses the anonymous key and knows each worker by a unique name."""
    problems = []
    if data.is_anonymous:
        problems.append(
            "api_key is the anonymous key (0000000000), which cannot run a worker. "
            "Register at https://aihorde.net/register and put your key in bridgeData.yaml."
        )
    if data.dreamer and data.dreamer_name == DEFAULT_WORKER_NAME:
        problems.append(
            f"dreamer_name is not set ('{DEFAULT_WORKER_NAME}' is the template's placeholder, and a worker's name "
            "must be unique across the whole horde). Set dreamer_name in bridgeData.yaml, or pass -n NAME."
        )
    if data.alchemist and data.alchemist_name == DEFAULT_ALCHEMIST_NAME:
        problems.append(
            f"alchemist_name is not set ('{DEFAULT_ALCHEMIST_NAME}' is the template's placeholder, and a worker's "
            "name must be unique across the whole horde). Set alchemist_name in bridgeData.yaml."
        )
    return problems


def backend_problems(data: BridgeData) -> list[str]:
    """A backend this version lacks, or the fake backends pointed at a real horde."""
    problems = []
    try:
        capabilities_of(data.inference_backend)
    except BackendUnavailable as error:
        problems.append(str(error))
    if (data.inference_backend == "fake" or data.safety_backend == "fake") and is_public_horde(data.horde_url):
        # The fake backends submit test patterns and unchecked verdicts: never to a real horde.
        problems.append(
            f"the fake backends make test patterns, not images; they only run against a local horde "
            f"(python -m horde_worker_regen local-horde), not {data.horde_url}. "
            "Set inference_backend and safety_backend back to their defaults."
        )
    return problems


def refuse_settings(data: BridgeData) -> None:
    """The refusals that need nothing but the settings and the custom models' files."""
    problems = identity_problems(data) + backend_problems(data) + custom_model_file_problems(data)
    if problems:
        raise StartupError(_refusal(problems))


async def resolve_served_models(data: BridgeData, report: Callable[[ModelSelection], None]) -> ModelSelection:
    """The models to serve; `report` hears the selection (unknown names, notes) before an empty one is refused."""
    try:
        selection = await select_models(data)
    except (ReferenceUnavailable, MetaInstructionError) as error:
        raise ModelsUnresolved(f"models cannot be resolved: {error}") from None
    except CustomModelClash as error:
        raise StartupError(_refusal(error.problems)) from None
    report(selection)
    if not selection.models:
        raise ModelsUnresolved("No model to serve: check models_to_load and models_to_skip (try check-config).")
    return selection


async def refuse_unfit_gpu_settings(data: BridgeData, models: list[str]) -> list[DeviceInfo] | None:
    """GPU settings that name GPUs this machine lacks, or per-GPU models and powers that cannot work.

    Returns the GPUs found when it had to look (the worker then plans its slots on them without
    probing again), None when there were no GPU settings to check."""
    if data.gpu_device_indices is None and not data.gpu_device_overrides:
        return None  # every GPU found (or the CPU) is used as is: nothing to contradict, no need to look
    if data.inference_backend == "fake":
        devices = fake_devices(data.fake_backend)
    else:
        devices = await asyncio.to_thread(discover_devices)
    try:
        plan_slots(data, devices, models)
    except ConfigError as error:
        raise StartupError(_refusal(error.problems)) from None
    return devices


def report_disk_need(data: BridgeData, models: list[str]) -> DiskNeed:
    """The disk check: logs what the files still to download need (a warning when it does not fit)."""
    need = disk_need(data, models, fetch_files=backend_needs_model_files(data))
    log_disk_need(need)
    return need


@dataclass(frozen=True)
class CheckedStart:
    """What the start-up checks found: the models to serve, the GPUs if they had to look for them, and
    what the files still to download need on disk."""

    selection: ModelSelection
    devices: list[DeviceInfo] | None
    disk: DiskNeed


async def check_startup(data: BridgeData, report: Callable[[ModelSelection], None]) -> CheckedStart:
    """Every refusal made before the horde is asked anything, in start-up order.

    Raises StartupError (ModelsUnresolved for the models) with the message the operator acts on.
    """
    refuse_settings(data)
    if not data.dreamer:  # an alchemist-only worker serves no image model and downloads none
        selection = ModelSelection(notes=["dreamer: false: no image model is served, only alchemy forms"])
        report(selection)
        return CheckedStart(selection, None, report_disk_need(data, []))
    selection = await resolve_served_models(data, report)
    devices = await refuse_unfit_gpu_settings(data, selection.models)
    return CheckedStart(selection, devices, report_disk_need(data, selection.models))
