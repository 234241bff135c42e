"""Upscaling one image with a spandrel network: exactly `scale` times its size, whatever its size and mode.

The colour channels go through the network, tiled (`tiling`); an alpha channel (a transparent or
background-stripped image) is resized to the new size, since no upscaler reads alpha. Out of device
memory, the tile edge is halved and the image tried again, down to `MIN_TILE`.

Child processes only (torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from loguru import logger
from PIL import Image

from horde_worker_regen.inference.tiling import upscale_tiled

if TYPE_CHECKING:
    import torch
    from spandrel import ImageModelDescriptor  # type: ignore[import-untyped]

# Context read around each tile's core; its border effects are cropped away with it.
TILE_OVERLAP = 32
MIN_TILE = 128


def to_tensor(image: Image.Image, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """An RGB image as a (1, 3, H, W) tensor in [0, 1]."""
    import torch

    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    tensor = torch.from_numpy(pixels.copy()).permute(2, 0, 1).unsqueeze(0)
    return tensor.to(device=device, dtype=dtype).div_(255)


def overlap_for(tile: int) -> int:
    """The context around a tile's core: `TILE_OVERLAP`, less for small tiles (the core keeps half the tile)."""
    return min(TILE_OVERLAP, tile // 4)


def upscale_rgb(image: Image.Image, network: ImageModelDescriptor[Any], tile: int) -> Image.Image:
    """The colour channels upscaled by the network, tile by tile; smaller tiles if the device runs out."""
    import torch

    tensor = to_tensor(image, network.device, network.dtype)
    while True:
        try:
            with torch.inference_mode():
                pixels = upscale_tiled(
                    tensor, network, network.scale, network.size_requirements, tile=tile, overlap=overlap_for(tile)
                )
            return Image.fromarray(pixels, "RGB")
        except torch.OutOfMemoryError:
            if tile // 2 < MIN_TILE:
                raise
            tile //= 2
            torch.cuda.empty_cache()
            logger.warning(f"Out of device memory while upscaling: trying again with {tile} px tiles")


def upscale(image: Image.Image, network: ImageModelDescriptor[Any], tile: int) -> Image.Image:
    """`image` upscaled `network.scale` times (RGB through the network, alpha resized)."""
    alpha = image.getchannel("A") if "A" in image.getbands() else None
    upscaled = upscale_rgb(image, network, tile)
    if alpha is None:
        return upscaled
    upscaled.putalpha(alpha.resize(upscaled.size, Image.Resampling.LANCZOS))
    return upscaled
