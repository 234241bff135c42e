"""The real safety backend: horde_safety's CLIP-based NSFW and CSAM check, run in the safety child; and the
alchemy analysis forms with the same CLIP model (interrogation) and BLIP (caption, loaded on first use).

Built once per safety process. The CLIP ViT-L/14 model comes from the file `weights.py` downloaded
at start-up; horde_safety's own `get_interrogator_no_blip` then builds the interrogator around it
(its text-embedding caches and label tables included), and `NSFWChecker.check_for_nsfw` gives the
verdict on each image.

The stand-in test mode runs the same horde_safety code around a *small* CLIP with random weights
(two layers, width 64; same tokenizer and context length). Random weights make every verdict
arbitrary whatever the size, and a random ViT-L/14 on a shared CPU takes minutes to encode
horde_safety's predicates at the first check; the small one takes about a second.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from horde_worker_regen.safety.backend import SafetyScores
from horde_worker_regen.safety.caption_options import CaptionOptions
from horde_worker_regen.safety.ranking import Ranked
from horde_worker_regen.safety.weights import (
    CLIP_WEIGHTS_NAME,
    LABEL_TABLES,
    STAND_IN,
    SafetyWeightsUnavailable,
    WeightsMode,
    cache_root,
    caption_cache_dir,
    caption_model_source,
    label_cache_name,
    missing_files,
    safety_folder,
)

if TYPE_CHECKING:
    from PIL.Image import Image

    from horde_worker_regen.safety.caption import BlipCaptioner
    from horde_worker_regen.safety.interrogation import InterrogationTables

# The open_clip config matching OpenAI's ViT-L/14 (trained with QuickGELU), for loading it from a file.
OPEN_CLIP_ARCHITECTURE = "ViT-L-14-quickgelu"
STAND_IN_ARCHITECTURE = "horde-worker-stand-in-clip"
STAND_IN_WIDTH = 64
STAND_IN_CONFIG = {
    "embed_dim": STAND_IN_WIDTH,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": STAND_IN_WIDTH, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": STAND_IN_WIDTH, "heads": 2, "layers": 2},
}
STAND_IN_SEED = 0
# clip-interrogator's trending label table is built in code, not read from a data file.
TRENDING_SITES = (
    "Artstation",
    "behance",
    "cg society",
    "cgsociety",
    "deviantart",
    "dribble",
    "flickr",
    "instagram",
    "pexels",
    "pinterest",
    "pixabay",
    "pixiv",
    "polycount",
    "reddit",
    "shutterstock",
    "tumblr",
    "unsplash",
    "zbrush central",
)


def safety_device(on_gpu: bool) -> str:
    """`cuda` when the operator asked for the GPU (`safety_on_gpu`) and one is there, else `cpu`."""
    import torch

    if on_gpu and not torch.cuda.is_available():
        logger.warning("safety_on_gpu is set but no CUDA device is available; the safety check runs on the CPU")
    return "cuda" if on_gpu and torch.cuda.is_available() else "cpu"


def stand_in_label_tables() -> dict[str, list[str]]:
    """Every label table clip-interrogator builds for CLIP, with exactly its labels (their hash keys the cache)."""
    from clip_interrogator import Config, load_list  # type: ignore[import-untyped]

    data = Config.data_path
    artists = load_list(data, "artists.txt")
    sites = TRENDING_SITES
    trending = [
        *sites,
        *(f"trending on {site}" for site in sites),
        *(f"featured on {site}" for site in sites),
        *(f"{site} contest winner" for site in sites),
    ]
    return {
        "artists": [f"by {name}" for name in artists] + [f"inspired by {name}" for name in artists],
        "flavors": load_list(data, "flavors.txt"),
        "mediums": load_list(data, "mediums.txt"),
        "movements": load_list(data, "movements.txt"),
        "trendings": trending,
        "negative": load_list(data, "negative.txt"),
    }


def write_stand_in_label_caches(folder: Path) -> None:
    """Random label embeddings in clip-interrogator's cache format, so it loads them instead of encoding
    ~100,000 labels with a random CLIP (the safety check itself never reads these tables)."""
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(STAND_IN_SEED)
    tables = stand_in_label_tables()
    assert tuple(tables) == LABEL_TABLES
    for table, labels in tables.items():
        path = folder / label_cache_name(table)
        if path.is_file():
            continue
        digest = hashlib.sha256(",".join(labels).encode()).hexdigest()
        embeds = generator.standard_normal((len(labels), STAND_IN_WIDTH)).astype(np.float16)
        part = path.with_name(path.name + ".part")
        save_file({"embeds": embeds, "hash": np.array([ord(c) for c in digest], dtype=np.int8)}, str(part))
        part.replace(path)


def _clip_model(folder: Path, pretrained: str | None, device: str) -> tuple[Any, Any]:
    """CLIP ViT-L/14 from its weights file, or (pretrained None) the small random stand-in; with preprocessing."""
    import open_clip  # type: ignore[import-untyped]
    import torch

    architecture = OPEN_CLIP_ARCHITECTURE
    if pretrained is None:
        config_file = folder / f"{STAND_IN_ARCHITECTURE}.json"
        config_file.write_text(json.dumps(STAND_IN_CONFIG), encoding="utf-8")
        open_clip.add_model_config(config_file)
        architecture = STAND_IN_ARCHITECTURE
        torch.manual_seed(STAND_IN_SEED)  # the stand-in is the same model in every process
    model, _, preprocess = open_clip.create_model_and_transforms(
        architecture, pretrained=pretrained, precision="fp16" if device == "cuda" else "fp32", device=device, jit=False
    )
    model.eval()
    return model, preprocess


def _interrogator(model: Any, preprocess: Any, device: str) -> Any:
    """horde_safety's interrogator around our CLIP model.

    `get_interrogator_no_blip` always asks open_clip for `pretrained="openai"` (a network fetch) unless
    clip-interrogator's `Config` already holds a model: its `clip_model`/`clip_preprocess` are class
    attributes read by every Config, so they are set for the duration of the call only.
    """
    from clip_interrogator import Config
    from horde_safety.interrogate import get_interrogator_no_blip

    Config.clip_model, Config.clip_preprocess = model, preprocess
    try:
        return get_interrogator_no_blip(device=device)
    finally:
        Config.clip_model = Config.clip_preprocess = None


class HordeSafetyBackend:
    """Implements `SafetyBackend` with horde_safety's `NSFWChecker`."""

    name = "horde_safety"

    def __init__(self, cache_home: Path, *, on_gpu: bool, mode: WeightsMode) -> None:
        started = time.monotonic()
        folder = safety_folder(cache_home, mode)
        if mode != STAND_IN and (missing := missing_files(folder)):
            # Start-up downloads them first; missing here means they went away since.
            raise SafetyWeightsUnavailable(
                f"safety model files missing in {folder}: {', '.join(file.path.name for file in missing)}"
            )
        # horde_safety fixes its cache folder from AIWORKER_CACHE_HOME when first imported.
        os.environ["AIWORKER_CACHE_HOME"] = str(cache_root(cache_home, mode))
        from horde_worker_regen.torch_compat import ensure_torchvision_importable

        ensure_torchvision_importable()  # open_clip imports torchvision
        self.device = safety_device(on_gpu)
        pretrained: str | None = str(folder / CLIP_WEIGHTS_NAME)
        if mode == STAND_IN:
            logger.warning("Safety check uses RANDOM STAND-IN weights (test mode): its verdicts mean nothing")
            write_stand_in_label_caches(folder)
            pretrained = None
        from horde_safety.nsfw_checker_class import NSFWChecker

        model, preprocess = _clip_model(folder, pretrained, self.device)
        self.interrogator = _interrogator(model, preprocess, self.device)
        # The anime second opinion (DeepDanbooru, ~600 MB more) is not loaded: CLIP alone decides.
        self.checker = NSFWChecker(self.interrogator, None)
        self.mode = mode
        self.cache_home = cache_home
        self._tables: InterrogationTables | None = None  # built on the first interrogation form
        self._captioner: BlipCaptioner | None = None  # loaded on the first caption form
        logger.info(f"horde_safety ready on {self.device} ({mode} weights) in {time.monotonic() - started:.1f}s")

    def check(self, image: bytes, prompt: str) -> SafetyScores:
        """The verdict on one image; raises if horde_safety gives none (the caller then censors it)."""
        from PIL import Image

        with Image.open(io.BytesIO(image)) as opened:
            picture = opened.convert("RGB")
        return scores_from(self.checker.check_for_nsfw(picture, prompt, None))

    def interrogate(self, picture: Image) -> Mapping[str, list[Ranked]]:
        """The top labels of each word list for the picture, ranked by the safety check's CLIP model."""
        from horde_worker_regen.safety.interrogation import InterrogationTables

        if self._tables is None:
            self._tables = InterrogationTables.from_interrogator(self.interrogator, self.device)
        return self._tables.rank(self.interrogator.image_to_features(picture))

    def caption(self, picture: Image, options: CaptionOptions) -> str:
        """BLIP's caption of the picture; the model is loaded on the first call (the stand-in built first)."""
        from horde_worker_regen.safety.caption import BlipCaptioner, write_stand_in_caption_model

        if self._captioner is None:
            source = caption_model_source(self.cache_home, self.mode)
            if self.mode == STAND_IN:
                logger.warning("Caption form uses a RANDOM STAND-IN BLIP (test mode): its captions mean nothing")
                write_stand_in_caption_model(Path(source))
            self._captioner = BlipCaptioner(source, caption_cache_dir(self.cache_home), self.device)
        return self._captioner.caption(picture, options)


def scores_from(result: Any) -> SafetyScores:
    """horde_safety's `NSFWResult` as scores: CSAM implies NSFW; no result is an error (the image is then
    censored as CSAM by the caller, since an unchecked image must not go out)."""
    if result is None:
        raise RuntimeError("horde_safety returned no verdict")
    return SafetyScores(is_nsfw=bool(result.is_nsfw or result.is_csam), is_csam=bool(result.is_csam))
