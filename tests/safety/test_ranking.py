"""The interrogation ranking: the top labels of a list, best first, with a softmax confidence in percent."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.safety.ranking import TOP_COUNT, Ranked, top_ranked


def test_the_most_similar_labels_come_first_with_their_share_in_percent() -> None:
    labels = ["cat", "dog", "tree", "sky", "sea", "car", "house"]
    similarities = [0.20, 0.31, 0.05, 0.30, 0.10, 0.29, 0.00]
    ranked = top_ranked(labels, similarities)
    assert [item.text for item in ranked] == ["dog", "sky", "car", "cat", "sea"]
    logits = 100.0 * np.array(similarities)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum() * 100.0
    assert [item.confidence for item in ranked] == pytest.approx(sorted(expected, reverse=True)[:TOP_COUNT])


def test_equal_similarities_share_the_confidence() -> None:
    assert top_ranked(["a", "b", "c", "d"], [0.2] * 4, top_count=2) == [Ranked("a", 25.0), Ranked("b", 25.0)]


def test_a_short_list_gives_all_its_labels_and_an_empty_one_none() -> None:
    assert [item.text for item in top_ranked(["x", "y"], [0.1, 0.2])] == ["y", "x"]
    assert top_ranked([], np.zeros(0)) == []


def test_similarities_must_match_the_labels() -> None:
    with pytest.raises(ValueError, match="3 similarities for 2 labels"):
        top_ranked(["a", "b"], [0.1, 0.2, 0.3])


@given(st.lists(st.floats(min_value=-1.0, max_value=1.0), min_size=1, max_size=60))
def test_confidences_are_percent_shares_of_one_softmax(similarities: list[float]) -> None:
    labels = [f"label {index}" for index in range(len(similarities))]
    ranked = top_ranked(labels, similarities)
    assert len(ranked) == min(TOP_COUNT, len(labels))
    confidences = [item.confidence for item in ranked]
    assert all(math.isfinite(value) and 0.0 <= value <= 100.0 for value in confidences)
    assert confidences == sorted(confidences, reverse=True) and sum(confidences) <= 100.0 + 1e-9
    assert max(similarities) == pytest.approx(similarities[labels.index(ranked[0].text)])
