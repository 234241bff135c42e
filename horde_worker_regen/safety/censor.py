"""The images that replace censored results: one per kind and size, drawn once, WebP-encoded.

They are built in the safety child (Pillow), so the parent never encodes an image. The text is
wrapped to the image and scaled with it; a small image gets a shorter wording, so that no image
shows a sentence cut at its edge (a 64 px thumbnail says "Censored").
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from horde_worker_regen.jobs.spec import Censorship

_BACKGROUND: dict[Censorship, tuple[int, int, int]] = {"nsfw": (48, 48, 56), "csam": (0, 0, 0)}
# From the fullest wording to the shortest; the first that fits the image is drawn.
LABELS: dict[Censorship, tuple[str, ...]] = {
    "nsfw": ("This image was censored by the worker's NSFW filter.", "Censored (NSFW filter)", "Censored"),
    "csam": ("This image was censored.", "Censored"),
}
_TEXT_COLOUR = (220, 220, 220)
_MARGIN_FRACTION = 0.06
_LINE_SPACING = 1.25
_MIN_FONT_PX, _MAX_FONT_PX = 8, 48
_FONT_FRACTION = 0.06  # of the shorter side


@dataclass(frozen=True)
class LabelLine:
    """One line of the label: its text, its top-left corner and its width and height in pixels."""

    text: str
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Label:
    """The label as drawn: its font size and lines (none when even the shortest wording cannot fit)."""

    font_size: int
    lines: tuple[LabelLine, ...]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str] | None:
    """The words of `text` in lines no wider than `width`; None if a single word is wider."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(candidate) <= width:
            lines[-1] = candidate
        elif font.getlength(word) <= width:
            lines.append(word)
        else:
            return None
    return lines


def label_layout(kind: Censorship, width: int, height: int) -> Label:
    """The label's lines, centred, for a `width`x`height` image: the fullest wording that fits inside the
    margins, at a size that grows with the image; no line when even the shortest cannot fit."""
    margin = max(2, int(min(width, height) * _MARGIN_FRACTION))
    inner_width, inner_height = width - 2 * margin, height - 2 * margin
    size = max(_MIN_FONT_PX, min(_MAX_FONT_PX, int(min(width, height) * _FONT_FRACTION)))
    for font_size in range(size, _MIN_FONT_PX - 1, -1):
        font = _font(font_size)
        line_height = int(font_size * _LINE_SPACING)
        for text in LABELS[kind]:
            lines = _wrap(text, font, inner_width)
            if lines is None or line_height * len(lines) > inner_height:
                continue
            top = (height - line_height * len(lines)) // 2
            return Label(
                font_size,
                tuple(
                    _placed(line, font, width, top + index * line_height, line_height)
                    for index, line in enumerate(lines)
                ),
            )
    return Label(_MIN_FONT_PX, ())


def _placed(
    text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int, y: int, line_height: int
) -> LabelLine:
    text_width = round(font.getlength(text))
    return LabelLine(text, (width - text_width) // 2, y, text_width, line_height)


@functools.lru_cache(maxsize=32)
def censor_image(kind: Censorship, width: int, height: int) -> bytes:
    """A `width`x`height` WebP that says the result was censored."""
    image = Image.new("RGB", (width, height), _BACKGROUND[kind])
    draw = ImageDraw.Draw(image)
    label = label_layout(kind, width, height)
    font = _font(label.font_size)
    for line in label.lines:
        draw.text((line.x, line.y), line.text, fill=_TEXT_COLOUR, font=font)
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=80)
    return buffer.getvalue()
