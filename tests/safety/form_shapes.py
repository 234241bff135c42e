"""The result objects the horde takes for each analysis form (horde-v13-and-alchemy.md §3.2), checked exactly."""

from __future__ import annotations

import json
import math
from typing import Any

from horde_worker_regen.jobs.alchemy import FormOutcome
from horde_worker_regen.safety.ranking import INTERROGATION_CATEGORIES, RESULT_CATEGORIES, TOP_COUNT


def assert_interrogation_shape(details: Any) -> None:
    """`{category: [{"text": str, "confidence": percent}, ...]}`: all seven of the horde's categories; each ranked
    one its top five, best first; those without a word list here empty."""
    assert isinstance(details, dict) and set(details) == set(RESULT_CATEGORIES)
    assert all(details[category] == [] for category in set(RESULT_CATEGORIES) - set(INTERROGATION_CATEGORIES))
    for category in INTERROGATION_CATEGORIES:
        ranking = details[category]
        assert isinstance(ranking, list) and len(ranking) == TOP_COUNT, category
        for item in ranking:
            assert set(item) == {"text", "confidence"}
            assert isinstance(item["text"], str) and item["text"].strip()
            confidence = item["confidence"]
            assert type(confidence) is float and math.isfinite(confidence) and 0.0 <= confidence <= 100.0
        confidences = [item["confidence"] for item in ranking]
        assert confidences == sorted(confidences, reverse=True)
        assert sum(confidences) <= 100.0 + 1e-6
        assert len({item["text"] for item in ranking}) == TOP_COUNT, f"{category} repeats a label"


def assert_form_result(outcome: FormOutcome, form_id: str, form: str) -> dict[str, Any]:
    """The outcome is a success whose result is exactly what the horde expects for `form`; returns it."""
    assert outcome.form_id == form_id and outcome.form == form
    assert outcome.error is None and outcome.image is None and outcome.ok
    result = outcome.result
    assert result is not None and set(result) == {form}
    json.dumps(result, allow_nan=False)  # the submit body is JSON
    if form == "nsfw":
        assert type(result["nsfw"]) is bool
    elif form == "caption":
        assert isinstance(result["caption"], str)
    else:
        assert_interrogation_shape(result["interrogation"])
    assert outcome.seconds >= 0.0
    return result


def assert_form_error(outcome: FormOutcome, form_id: str, *phrases: str) -> None:
    """The outcome failed, with a reason that says each of `phrases`, and no result."""
    assert outcome.form_id == form_id and not outcome.ok
    assert outcome.result is None and outcome.image is None and outcome.error
    for phrase in phrases:
        assert phrase in outcome.error
