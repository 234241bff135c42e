"""The censor images: the whole label inside the image at every size the horde asks for."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from horde_worker_regen.jobs.spec import Censorship
from horde_worker_regen.safety.censor import LABELS, censor_image, label_layout

HORDE_SIDES = st.integers(min_value=1, max_value=32).map(lambda n: n * 64)  # 64 to 2048 px, as the horde sends
KINDS = st.sampled_from(["nsfw", "csam"])


@given(KINDS, HORDE_SIDES, HORDE_SIDES)
def test_the_label_is_never_cut_at_the_edge(kind: Censorship, width: int, height: int) -> None:
    label = label_layout(kind, width, height)
    assert label.lines, "every horde size has room for at least the shortest wording"
    for line in label.lines:
        assert line.x >= 0 and line.x + line.width <= width
        assert line.y >= 0 and line.y + line.height <= height
    # No word is lost to the wrapping: the lines read as one of the wordings, whole.
    assert " ".join(line.text for line in label.lines) in LABELS[kind]


def test_a_64_pixel_censor_image_still_shows_text_and_a_large_one_the_full_sentence() -> None:
    small = Image.open(io.BytesIO(censor_image("nsfw", 64, 64))).convert("L")
    assert small.size == (64, 64)
    assert max(small.getdata()) > 150  # light text on the dark background
    wide = label_layout("nsfw", 1024, 1024)
    assert " ".join(line.text for line in wide.lines) == LABELS["nsfw"][0]
