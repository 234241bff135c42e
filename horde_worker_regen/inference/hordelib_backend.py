"""The real inference backend: hordelib (ComfyUI underneath) in the inference child.

Built once per child, it sets hordelib's environment, initialises it for this machine (`--cpu`
where torch sees no GPU, else the configured VRAM mode) and loads its model managers offline (the
main process keeps the model reference cached). Each job goes to `HordeLib.basic_inference`;
post-processors then run in the horde's order (`post_processing_plan`: one upscaler, face fixers
last): the eight of capability level 13 through spandrel (`level13_post`), strip_background through
hordelib's rembg with the model the worker verified (`background_removal`), the others through
hordelib; every image is encoded to WebP here in the child. Step progress goes to `ProgressSink`,
stage changes to `StageSink`. The main process fetches LoRAs and TIs before the job is queued and
removes those it could not get (reporting them); the files it fetched are registered in hordelib's
LoRA/TI managers for the job (`hordelib_extras`), so hordelib never fetches them again (one without
a local file is dropped with a `download_failed` entry). hordelib's per-image faults (an input it
could not parse, say) become the job's `gen_metadata` and the job succeeds without it, as the horde
expects (horde-api.md §5).

Imported only in an inference child: it imports torch and hordelib.
"""

from __future__ import annotations

import io
import os
from typing import Any

from loguru import logger
from PIL import Image

from horde_worker_regen.inference.backend import (
    BackendCapabilities,
    FeatureFailed,
    Generation,
    InferenceError,
    ProgressSink,
    StageSink,
)
from horde_worker_regen.inference.background_removal import rembg_available, strip_background
from horde_worker_regen.inference.capabilities import HORDELIB_CAPABILITIES
from horde_worker_regen.inference.hordelib_extras import (
    LocalExtras,
    apply_to_payload,
    local_extras,
    register,
    unregister,
)
from horde_worker_regen.inference.hordelib_failures import generation_failure, post_processing_failure
from horde_worker_regen.inference.hordelib_payload import (
    UnreadableInput,
    hordelib_payload,
    post_processing_plan,
    post_processing_steps,
)
from horde_worker_regen.inference.hordelib_settings import LEGACY_REFERENCE, HordelibSettings, hordelib_environment
from horde_worker_regen.inference.level13_post import (
    Level13PostProcessors,
    is_level_13,
    level13_in_hordelib,
    servable_in_hordelib,
)
from horde_worker_regen.inference.post_processing_plan import FACE_FIXERS, facefixer_strength
from horde_worker_regen.jobs.spec import GenerationSpec, JobInputs
from horde_worker_regen.models.post_processor_files import BACKGROUND_REMOVAL

WEBP_QUALITY = 95
# Model managers that start from nothing (LoRAs and TIs are fetched per job), and those that need
# their reference file (`legacy/<name>.json`, put there with the model reference) to load at all.
ALWAYS_LOADED_MANAGERS = ("compvis", "lora", "ti")
REFERENCE_MANAGERS = ("esrgan", "gfpgan", "codeformer", "controlnet", "miscellaneous")


def encode_webp(image: Image.Image) -> bytes:
    """An image as WebP bytes (RGBA kept for transparent and background-stripped images)."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=WEBP_QUALITY)
    return buffer.getvalue()


def has_gpu() -> bool:
    """Whether torch sees a CUDA device (imports torch: child processes only)."""
    import torch

    return bool(torch.cuda.is_available())


def _metadata_entry(fault: Any) -> dict[str, str]:
    """A hordelib `GenMetadataEntry` as a submit `gen_metadata` entry."""
    entry = {"type": str(fault.type_.value), "value": str(fault.value.value)}
    if fault.ref is not None:
        entry["ref"] = str(fault.ref)
    return entry


def _unique(entries: list[dict[str, str]]) -> tuple[dict[str, str], ...]:
    seen: list[dict[str, str]] = []
    for entry in entries:
        if entry not in seen:
            seen.append(entry)
    return tuple(seen)


class HordelibBackend:
    """Implements `InferenceBackend` with hordelib; one per inference child (hordelib is a singleton)."""

    capabilities: BackendCapabilities = HORDELIB_CAPABILITIES

    def __init__(
        self, settings: HordelibSettings, progress: ProgressSink | None = None, stage: StageSink | None = None
    ) -> None:
        self._progress = progress
        self._stage: StageSink = stage or (lambda job_key, stage: None)
        self._horde = self._start_hordelib(settings)
        self._cache_home = settings.cache_home
        self._level13: Level13PostProcessors | None = None
        # The managed names this child can run: level 13's (spandrel's architectures, hordelib's face
        # helper), and strip_background where rembg can run.
        background = (BACKGROUND_REMOVAL,) if rembg_available() else ()
        self.post_processors: tuple[str, ...] = (*servable_in_hordelib(), *background)

    @staticmethod
    def _start_hordelib(settings: HordelibSettings) -> Any:
        from horde_worker_regen.torch_compat import ensure_torchvision_importable

        ensure_torchvision_importable()  # before anything imports torchvision
        gpu = has_gpu()
        os.environ.update(hordelib_environment(settings, gpu))
        import hordelib

        hordelib.initialise(
            setup_logging=None,  # the worker's own log sinks stay in charge
            process_id=settings.slot,
            extra_comfyui_args=settings.comfyui_args(gpu),
            force_normal_vram_mode=gpu and not (settings.high_vram or settings.gpu_only),
            disable_smart_memory=gpu and settings.disable_smart_memory,  # a VRAM knob: no meaning on the CPU
        )
        from hordelib.horde import HordeLib
        from hordelib.shared_model_manager import SharedModelManager

        legacy = (settings.cache_home / LEGACY_REFERENCE).parent
        present = [name for name in REFERENCE_MANAGERS if (legacy / f"{name}.json").is_file()]
        missing = sorted(set(REFERENCE_MANAGERS) - set(present))
        if missing:
            logger.warning(f"No reference for {', '.join(missing)} in {legacy}: jobs that need them will fail")
        SharedModelManager.load_model_managers([*ALWAYS_LOADED_MANAGERS, *present], download_legacy_references=False)
        logger.info(f"hordelib ready on {'the GPU' if gpu else 'the CPU'} ({' '.join(settings.comfyui_args(gpu))})")
        return HordeLib()

    def generate(self, spec: GenerationSpec, inputs: JobInputs) -> Generation:
        """Every image of the job, post-processed in request order, WebP-encoded."""
        try:
            payload = hordelib_payload(spec, inputs)
        except UnreadableInput as error:
            raise InferenceError(str(error)) from None
        extras = self._local_extras(spec)
        apply_to_payload(payload, extras)
        managers = self._extra_managers()
        register(*managers, extras)
        # hordelib loads the checkpoint inside basic_inference: "loading_model" lasts until the first step.
        self._stage(spec.job_key, "loading_model")
        try:
            results = self._horde.basic_inference(payload, progress_callback=self._progress_callback(spec))
        except (RuntimeError, ValueError, OSError) as error:
            # Told apart by their text: a missing model file fails every job on it, most else only this one.
            raise generation_failure(error, spec.model) from error
        finally:
            unregister(*managers, extras)
        if len(results) != spec.n_iter:
            raise InferenceError(f"hordelib returned {len(results)} images for a batch of {spec.n_iter}")
        metadata = extras.faults + [_metadata_entry(fault) for result in results for fault in result.faults]
        self._log_left_out(spec)
        if post_processing_steps(spec):
            self._stage(spec.job_key, "post_processing")
        processed = []
        for result in results:
            image, faults = self._post_process(spec, result.image)
            metadata += faults
            processed.append(image)
        self._stage(spec.job_key, "encoding")
        return Generation([encode_webp(image) for image in processed], _unique(metadata))

    def preload(self, model: str) -> None:
        """Load `model`'s checkpoint into RAM now, where the next job's checkpoint loader finds it.

        hordelib's checkpoint loader node keeps the last checkpoint it loaded (`_models_in_ram`) and
        hands it back to the next job on that model instead of reading the file again, unless it was
        loaded for a job with LoRAs; a fresh ComfyUI executor per job means nothing else survives.
        Calling that node directly, as a job would without LoRAs or tiling, is the cheapest real load:
        no sampling, no image. The parent times it with the model-load limit (it has no job to stage).
        """
        from hordelib.nodes.node_model_loader import HordeCheckpointLoader

        HordeCheckpointLoader().load_checkpoint(
            will_load_loras=False,
            seamless_tiling_enabled=False,
            horde_model_name=model,
            file_type=self._horde.get_model_file_type(model),  # as the job's loader will ask for it
            preloading=True,
        )

    @staticmethod
    def _local_extras(spec: GenerationSpec) -> LocalExtras:
        """The job's LoRAs/TIs mapped onto the fetched files, in the folders ComfyUI loads them from."""
        from hordelib.settings import UserSettings

        models = UserSettings.get_model_directory()
        return local_extras(spec, models / "lora", models / "ti")

    @staticmethod
    def _extra_managers() -> tuple[Any, Any]:
        """hordelib's LoRA and TI managers (both loaded at start: `ALWAYS_LOADED_MANAGERS`)."""
        from hordelib.shared_model_manager import SharedModelManager

        return SharedModelManager.manager.lora, SharedModelManager.manager.ti

    def _progress_callback(self, spec: GenerationSpec) -> Any:
        sink = self._progress or (lambda job_key, step, total: None)
        # ComfyUI repeats its last step when the bar closes: report each step once. A second sampling
        # pass (hires_fix) starts again from step 1 and is reported too, so the step limit keeps timing it.
        reported = [0]
        started = [False]

        def report(report: Any) -> None:
            progress = report.comfyui_progress
            if progress is not None and progress.current_step != reported[0]:
                if not started[0]:
                    started[0] = True
                    self._stage(spec.job_key, "sampling")
                reported[0] = progress.current_step
                sink(spec.job_key, progress.current_step, progress.total_steps)

        return report

    @staticmethod
    def _log_left_out(spec: GenerationSpec) -> None:
        plan = post_processing_plan(spec)
        if plan.extra_upscalers:
            logger.warning(f"Job {spec.job_key}: one upscaler per image; {', '.join(plan.extra_upscalers)} left out")
        if plan.unknown:
            logger.warning(f"Job {spec.job_key}: unknown post-processors left out: {', '.join(plan.unknown)}")

    def _level13_post(self) -> Level13PostProcessors:
        """The level-13 post-processors, built on first use."""
        if self._level13 is None:
            self._level13 = level13_in_hordelib(self._cache_home)
        return self._level13

    def _post_process(self, spec: GenerationSpec, image: Image.Image) -> tuple[Image.Image, list[dict[str, str]]]:
        """Apply each post-processor in the horde's order."""
        faults: list[dict[str, str]] = []
        for name in post_processing_steps(spec):
            try:
                image, step_faults = self._post_process_step(name, image, facefixer_strength(spec.payload))
            except InferenceError:
                raise
            except Exception as error:  # the image is made: what failed is the post-processor
                raise post_processing_failure(error, name) from error
            faults += step_faults
        return image, faults

    def post_process(self, name: str, image: Image.Image, strength: float) -> Image.Image:
        """One image through post-processor `name` (an alchemy form), by the same path as a job's."""
        try:
            return self._post_process_step(name, image, strength)[0]
        except InferenceError:
            raise
        except Exception as error:  # the post-processor failed, not the process
            raise post_processing_failure(error, name) from error

    def _post_process_step(
        self, name: str, image: Image.Image, strength: float
    ) -> tuple[Image.Image, list[dict[str, str]]]:
        """One post-processor on the image, and the gen_metadata entries it produced."""
        if is_level_13(name):
            return self._level13_post().run(name, image, strength), []
        if name == BACKGROUND_REMOVAL:
            return strip_background(image, self._cache_home), []
        request: dict[str, Any] = {"model": name, "source_image": image}
        if name in FACE_FIXERS:
            request["facefixer_strength"] = strength
            result = self._horde.image_facefix(request)
        else:
            result = self._horde.image_upscale(request)
        if result.image is None:
            raise FeatureFailed("post_processing", f"post-processor {name} produced no image")
        return result.image, [_metadata_entry(fault) for fault in result.faults]
