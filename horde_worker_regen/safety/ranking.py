"""The interrogation form's ranking: which labels of a word list fit an image best, and how surely.

The horde's interrogation result lists, per category, the top labels with a `confidence` in percent
(horde-v13-and-alchemy.md §3.2). As the legacy alchemist did, a label's confidence is its share of a
softmax over the whole list of CLIP similarities scaled by 100 (CLIP's own logit scale): the
confidences of one category sum to at most 100, and a list of near-equal labels gives each a little.
Pure numpy, so every backend (the fake included) ranks alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

TOP_COUNT = 5
LOGIT_SCALE = 100.0
# The categories this worker ranks: those of the horde's result that have a word list here (clip-interrogator
# ships artists, flavors, mediums and movements, and builds its site list in code). The horde's `tags` and
# `techniques` came from the legacy worker's own lists, which are not available here, so they are sent empty.
INTERROGATION_CATEGORIES = ("artists", "flavors", "mediums", "movements", "sites")
# The categories of the horde's interrogation result; those without a list here are sent empty.
RESULT_CATEGORIES = ("artists", "flavors", "mediums", "movements", "sites", "tags", "techniques")


class Ranked(NamedTuple):
    """One label of a ranking and its confidence, in percent."""

    text: str
    confidence: float


def top_ranked(
    labels: Sequence[str], similarities: npt.ArrayLike, top_count: int = TOP_COUNT, scale: float = LOGIT_SCALE
) -> list[Ranked]:
    """The `top_count` labels most similar to the image, best first, each with its softmax share in percent.

    `similarities` holds one cosine similarity per label, in the labels' order."""
    scores = np.asarray(similarities, dtype=np.float64).reshape(-1)
    if scores.shape[0] != len(labels):
        raise ValueError(f"{scores.shape[0]} similarities for {len(labels)} labels")
    if not labels or top_count < 1:
        return []
    logits = scale * scores
    shares = np.exp(logits - logits.max())
    shares /= shares.sum()
    count = min(top_count, len(labels))
    best = np.argpartition(-shares, count - 1)[:count]
    best = best[np.argsort(-shares[best], kind="stable")]
    return [Ranked(labels[index], float(shares[index] * 100.0)) for index in best]
