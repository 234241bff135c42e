"""Which models this worker serves: bridgeData's lists resolved against the model reference."""

from __future__ import annotations

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.meta_instructions import ModelSelection, resolve_models
from horde_worker_regen.config.notes import effective_allow_painting
from horde_worker_regen.models.reference import ModelRecord, ModelReference
from horde_worker_regen.models.reference_cache import load_model_reference

# bridgeData writes custom-model baselines the way the horde's API does; the reference uses
# its own older spellings for the SD 1/2 families.
_CUSTOM_BASELINE_SPELLINGS = {"stable_diffusion_1": "stable diffusion 1", "stable_diffusion_2": "stable diffusion 2"}


def custom_model_records(data: BridgeData) -> list[ModelRecord]:
    """The operator's custom models as reference records."""
    return [
        ModelRecord(name=model.name, baseline=_CUSTOM_BASELINE_SPELLINGS.get(model.baseline, model.baseline))
        for model in data.custom_models
    ]


def select_from_reference(data: BridgeData, reference: ModelReference) -> ModelSelection:
    """Resolve models_to_load/models_to_skip against an already loaded reference."""
    return resolve_models(
        data.models_to_load,
        data.models_to_skip,
        reference.with_custom(custom_model_records(data)),
        load_large_models=data.load_large_models,
        allow_painting=effective_allow_painting(data),
    )


async def select_models(data: BridgeData) -> ModelSelection:
    """Load (or read the cached) model reference and resolve the configured models."""
    reference = await load_model_reference(data.cache_home, data.horde_url)
    return select_from_reference(data, reference)
