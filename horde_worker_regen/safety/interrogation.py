"""The interrogation form's word lists as CLIP text embeddings, ranked against one image (safety child only).

The lists are the ones clip-interrogator ships and horde_safety's interrogator has already embedded with
the CLIP model the safety check uses (precomputed label tables, `weights.py`): artists, flavors, mediums,
movements, and its site list. Two of its tables are reshaped to what the horde's categories mean: an
artist is named once (its "by X" label, not also "inspired by X"), and a site is the bare site name (not
"trending on X" and the like). The embeddings are stacked once, on first use, in half precision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from horde_worker_regen.safety.ranking import TOP_COUNT, Ranked, top_ranked

ARTIST_PREFIX = "by "
SITE_VARIANTS = ("trending on ", "featured on ")
SITE_CONTEST_SUFFIX = " contest winner"
CHUNK_ROWS = 16_384  # labels per matrix product: bounds the float32 copy of a chunk


@dataclass(frozen=True)
class LabelMatrix:
    """One category: its labels as the horde shows them, and their unit CLIP text embeddings (one row each)."""

    texts: tuple[str, ...]
    embeddings: torch.Tensor

    def similarities(self, features: torch.Tensor) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The cosine similarity of each label to the image's unit CLIP features."""
        image = features.reshape(-1, 1).float()
        parts = [
            (self.embeddings[start : start + CHUNK_ROWS].float() @ image).reshape(-1)
            for start in range(0, len(self.texts), CHUNK_ROWS)
        ]
        return torch.cat(parts).cpu().numpy()


def _artist(label: str) -> str | None:
    return label[len(ARTIST_PREFIX) :] if label.startswith(ARTIST_PREFIX) else None


def _site(label: str) -> str | None:
    variant = label.startswith(SITE_VARIANTS) or label.endswith(SITE_CONTEST_SUFFIX)
    return None if variant else label


def _same(label: str) -> str | None:
    return label


# Each horde category: clip-interrogator's table, and which of its labels count (and as what text).
SOURCES: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "artists": ("artists", _artist),
    "flavors": ("flavors", _same),
    "mediums": ("mediums", _same),
    "movements": ("movements", _same),
    "sites": ("trendings", _site),
}


def label_matrix(
    labels: Sequence[str], embeds: Sequence[Any], keep: Callable[[str], str | None], device: str
) -> LabelMatrix:
    """The labels `keep` maps to a text, with their embeddings stacked on `device`."""
    chosen = [(index, text) for index, label in enumerate(labels) if (text := keep(label)) is not None]
    if not chosen:
        raise ValueError("no label of the table is kept")
    rows = np.stack([np.asarray(embeds[index], dtype=np.float16) for index, _ in chosen])
    return LabelMatrix(tuple(text for _, text in chosen), torch.from_numpy(rows).to(device))


class InterrogationTables:
    """Every category's label matrix, ranked against an image's CLIP features."""

    def __init__(self, matrices: Mapping[str, LabelMatrix]) -> None:
        self.matrices = dict(matrices)

    @classmethod
    def from_interrogator(cls, interrogator: Any, device: str) -> InterrogationTables:
        """The categories from clip-interrogator's label tables (already embedded by its CLIP model)."""
        matrices = {}
        for category, (table_name, keep) in SOURCES.items():
            table = getattr(interrogator, table_name)
            matrices[category] = label_matrix(table.labels, table.embeds, keep, device)
        return cls(matrices)

    def rank(self, features: torch.Tensor, top_count: int = TOP_COUNT) -> dict[str, list[Ranked]]:
        """The top labels of every category for the image, best first, with their confidence in percent."""
        return {
            category: top_ranked(matrix.texts, matrix.similarities(features), top_count)
            for category, matrix in self.matrices.items()
        }
