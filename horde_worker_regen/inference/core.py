"""The inference core: one job in, its images or the reason it failed out. No process, no pipe.

The inference child runs it behind its pipe (`processes/inference_child.py`); tests and the in-process
child client run it directly. It times each job with the monotonic clock of the process it runs in.
"""

from __future__ import annotations

import time

from loguru import logger

from horde_worker_regen.inference.backend import Generation, InferenceBackend, InferenceError
from horde_worker_regen.jobs.spec import Generated, GenerationFailed, GenerationSpec, JobInputs


class InferenceCore:
    """Runs jobs on a backend."""

    def __init__(self, backend: InferenceBackend) -> None:
        self.backend = backend

    def run(self, spec: GenerationSpec, inputs: JobInputs) -> Generated | GenerationFailed:
        """Generate one job; an error of the backend becomes `GenerationFailed`, never an exception."""
        started = time.monotonic()
        try:
            result = self.backend.generate(spec, inputs)
        except InferenceError as error:
            logger.warning(f"Job {spec.job_key} failed ({error.kind}): {error}")
            return GenerationFailed(str(error), started, time.monotonic(), error.kind, error.subject)
        except Exception as error:  # a backend bug must fault the job, not kill the slot
            logger.exception(f"Job {spec.job_key}: unexpected error in the backend")
            return GenerationFailed(f"{type(error).__name__}: {error}", started, time.monotonic())
        finished = time.monotonic()
        images, metadata = (result.images, result.gen_metadata) if isinstance(result, Generation) else (result, ())
        if len(images) != spec.n_iter:
            reason = f"the backend returned {len(images)} images for a batch of {spec.n_iter}"
            logger.error(f"Job {spec.job_key}: {reason}")
            return GenerationFailed(reason, started, finished)
        logger.debug(f"Job {spec.job_key}: {spec.n_iter} image(s) in {finished - started:.3f}s")
        return Generated(tuple(images), started, finished, metadata)

    def preload(self, model: str) -> str | None:
        """Load a model with no job; the reason it failed, or None. The core stays usable either way."""
        try:
            self.backend.preload(model)
        except Exception as error:  # the next job loads it again, and faults if it cannot
            logger.warning(f"Preloading {model} failed: {error}")
            return f"{type(error).__name__}: {error}"
        logger.debug(f"Preloaded {model}")
        return None
