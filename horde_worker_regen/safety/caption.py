"""The caption form's model: BLIP, loaded on the first caption (safety child only).

BLIP-large costs about 1.9 GB of memory, so a safety child that never captions never loads it. It is read
from transformers' cache only (`weights.caption_cache_dir`, filled at start-up by
`weights.ensure_caption_weights`), never downloaded here: a download would hold up the image checks
queued behind it. The stand-in test mode builds a tiny BLIP with random weights into its own folder
instead and loads it through the same `from_pretrained` calls.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from loguru import logger
from PIL.Image import Image

from horde_worker_regen.safety.caption_options import CaptionOptions
from horde_worker_regen.torch_compat import ensure_torchvision_importable

STAND_IN_SEED = 0
# A handful of words, so the stand-in's random captions read as words; the first six are BERT's specials and
# BLIP's decoder start token, as in the real vocabulary.
_STAND_IN_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")
_STAND_IN_WORDS = (
    "a an the of on in with and photo painting drawing cat dog house tree sky sea red blue green small large"
)
STAND_IN_IMAGE_SIZE = 32
STAND_IN_WIDTH = 32


def _transformers() -> Any:
    """transformers, whose BLIP classes import torchvision (made importable first)."""
    ensure_torchvision_importable()
    import transformers

    return transformers


def _stand_in_config() -> Any:
    size = len(_STAND_IN_SPECIALS) + len(_STAND_IN_WORDS.split())
    pad, sep, start = 0, _STAND_IN_SPECIALS.index("[SEP]"), _STAND_IN_SPECIALS.index("[DEC]")
    layers = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 2 * STAND_IN_WIDTH}
    return _transformers().BlipConfig(
        text_config={
            **layers,
            "vocab_size": size,
            "hidden_size": STAND_IN_WIDTH,
            "encoder_hidden_size": STAND_IN_WIDTH,
            "max_position_embeddings": 256,
            "bos_token_id": start,
            "pad_token_id": pad,
            "sep_token_id": sep,
            "eos_token_id": sep,
        },
        vision_config={**layers, "hidden_size": STAND_IN_WIDTH, "image_size": STAND_IN_IMAGE_SIZE, "patch_size": 8},
        projection_dim=STAND_IN_WIDTH,
    )


def write_stand_in_caption_model(folder: Path) -> None:
    """A tiny BLIP with random weights and its processor (a vocabulary of a few words), saved with
    `save_pretrained` into `folder` unless already there. Built in a scratch folder and moved into place,
    so a reader never sees half of it."""
    if (folder / "config.json").is_file():
        return
    transformers = _transformers()
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        vocabulary = scratch / "vocab.txt"
        vocabulary.write_text("\n".join((*_STAND_IN_SPECIALS, *_STAND_IN_WORDS.split())) + "\n", encoding="utf-8")
        tokenizer = transformers.BertTokenizer(str(vocabulary), do_lower_case=True, bos_token="[DEC]")  # noqa: S106 (a token, no secret)
        size = {"height": STAND_IN_IMAGE_SIZE, "width": STAND_IN_IMAGE_SIZE}
        image_processor = transformers.BlipImageProcessor(size=size)
        processor = transformers.BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
        processor.save_pretrained(scratch)
        torch.manual_seed(STAND_IN_SEED)
        transformers.BlipForConditionalGeneration(_stand_in_config()).save_pretrained(scratch)
        scratch.replace(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class CaptionModelMissing(RuntimeError):
    """The caption model's files are not where it is loaded from."""


class BlipCaptioner:
    """Captions pictures with BLIP from `source` (a hub name found in `cache_dir`, or a folder)."""

    def __init__(self, source: str, cache_dir: Path, device: str) -> None:
        self.source, self.cache_dir, self.device = source, cache_dir, device
        self._model: Any = None
        self._processor: Any = None

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def _load(self) -> None:
        transformers = _transformers()
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        cache_dir = str(self.cache_dir)
        try:
            processor = transformers.BlipProcessor.from_pretrained(
                self.source, cache_dir=cache_dir, local_files_only=True
            )
            model = transformers.BlipForConditionalGeneration.from_pretrained(
                self.source, cache_dir=cache_dir, local_files_only=True, dtype=dtype
            )
        except OSError as error:
            raise CaptionModelMissing(
                f"the caption model {self.source} is not in {self.cache_dir} ({error}); it is fetched at "
                "start-up when the caption form is offered"
            ) from None
        model.to(self.device)
        self._model, self._processor = model.eval(), processor
        logger.info(f"Caption model {self.source} loaded on {self.device}")

    def caption(self, picture: Image, options: CaptionOptions) -> str:
        """The caption BLIP samples for the picture (beam sampling: every option has its effect)."""
        if self._model is None:
            self._load()
        inputs = self._processor(images=picture, return_tensors="pt").to(self.device)
        pixels = inputs["pixel_values"].to(self._model.dtype)
        with torch.no_grad():
            tokens = self._model.generate(
                pixel_values=pixels,
                num_beams=options.num_beams,
                min_length=options.min_length,
                max_length=options.max_length,
                do_sample=True,
                top_p=options.top_p,
                repetition_penalty=options.repetition_penalty,
            )
        return str(self._processor.batch_decode(tokens, skip_special_tokens=True)[0]).strip()
