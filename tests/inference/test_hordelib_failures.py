"""hordelib's errors read as the fault breaker needs them, from hordelib's own raise statements.

The messages are taken from the installed hordelib's source (its `raise` expressions, evaluated here
with a model name), so a change of wording there shows up here; hordelib and torch are not imported.
"""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from horde_worker_regen.inference.backend import (
    FeatureFailed,
    FeatureUnsupported,
    InferenceError,
    ModelFileMissing,
    ModelUnloadable,
)
from horde_worker_regen.inference.core import InferenceCore
from horde_worker_regen.inference.hordelib_backend import HordelibBackend
from horde_worker_regen.inference.hordelib_extras import local_extras
from horde_worker_regen.inference.hordelib_failures import generation_failure, post_processing_failure
from horde_worker_regen.jobs.spec import GenerationFailed, GenerationSpec, JobInputs

SPEC = GenerationSpec("job-1", "Deliberate", "a fox", 512, 512, 20, 1, 7, "k_euler", 7.0, False, None, (), "txt2img")


@cache
def _hordelib_raises() -> dict[str, ast.expr]:
    """hordelib.horde's `raise ...(f"Model {model} ...")` expressions, by their text's ending."""
    spec = importlib.util.find_spec("hordelib")
    assert spec is not None and spec.submodule_search_locations
    source = (Path(next(iter(spec.submodule_search_locations))) / "horde.py").read_text()
    found: dict[str, ast.expr] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            text = ast.unparse(node.exc.args[0])
            if text.startswith("f'Model {model}"):
                found[text.split("}", 1)[1].rstrip("'")] = node.exc
    return found


def hordelib_error(ending: str, model: str) -> Exception:
    """The exception hordelib raises (`raise RuntimeError(f"Model {model}...")`), built from its source."""
    expression = ast.Expression(_hordelib_raises()[ending])
    error = eval(compile(expression, "hordelib/horde.py", "eval"), {"RuntimeError": RuntimeError, "model": model})
    assert isinstance(error, Exception)
    return error


def test_hordelibs_missing_file_error_is_a_missing_model() -> None:
    error = hordelib_error(" not found on disk!", "Deliberate")
    failure = generation_failure(error, "Deliberate")
    assert isinstance(failure, ModelFileMissing)
    assert (failure.kind, failure.subject) == ("missing_model", "Deliberate")
    assert str(failure) == "Model Deliberate not found on disk!"


def test_hordelibs_other_model_errors_are_deterministic_too() -> None:
    unknown = generation_failure(hordelib_error(" not found in model reference!", "Odd"), "Odd")
    assert isinstance(unknown, ModelFileMissing)
    unusable = generation_failure(hordelib_error(" has no files in its reference entry!", "Odd"), "Odd")
    assert isinstance(unusable, ModelUnloadable) and unusable.subject == "Odd"
    loader = generation_failure(ValueError("None file deliberate_v3.safetensors not found."), "Deliberate")
    assert isinstance(loader, ModelFileMissing)


def test_a_comfyui_failure_or_another_models_name_stays_transient() -> None:
    assert generation_failure(RuntimeError("Pipeline failed to run"), "Deliberate").kind == "transient"
    other = generation_failure(hordelib_error(" not found on disk!", "Other"), "Deliberate")
    assert other.kind == "transient"


def test_a_missing_post_processor_makes_post_processing_unsupported() -> None:
    failure = post_processing_failure(hordelib_error(" not found on disk!", "RealESRGAN_x4plus"), "RealESRGAN_x4plus")
    assert isinstance(failure, FeatureUnsupported) and failure.subject == "post_processing"
    crashed = post_processing_failure(RuntimeError("Pipeline failed to run"), "GFPGAN")
    assert isinstance(crashed, FeatureFailed) and crashed.subject == "post_processing"


class MissingModelHorde:
    """hordelib's `HordeLib` as it behaves when the job's model file is not on disk."""

    def basic_inference(self, payload: dict[str, Any], progress_callback: Any = None) -> list[Any]:
        raise hordelib_error(" not found on disk!", payload["model"])


def test_the_backend_reports_a_missing_model_file_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = HordelibBackend.__new__(HordelibBackend)  # no hordelib start-up: its HordeLib is the double above
    backend._progress, backend._stage, backend._horde = None, lambda key, stage: None, MissingModelHorde()
    monkeypatch.setattr(
        HordelibBackend,
        "_local_extras",
        staticmethod(lambda spec: local_extras(spec, tmp_path / "lora", tmp_path / "ti")),
    )
    monkeypatch.setattr(HordelibBackend, "_extra_managers", staticmethod(lambda: (None, None)))
    with pytest.raises(ModelFileMissing):
        backend.generate(SPEC, JobInputs())
    failed = InferenceCore(backend).run(SPEC, JobInputs())
    assert isinstance(failed, GenerationFailed)
    assert (failed.kind, failed.subject, failed.reason) == (
        "missing_model",
        "Deliberate",
        "Model Deliberate not found on disk!",
    )


@given(st.text(max_size=300), st.text(min_size=1, max_size=40))
def test_any_error_text_gets_a_classification(text: str, model: str) -> None:
    """Whatever an error says, reading it never fails, and only the job's own model can be named missing."""
    failure = generation_failure(RuntimeError(text), model)
    assert isinstance(failure, InferenceError)
    if failure.kind != "transient":
        assert failure.subject == model
    assert post_processing_failure(ValueError(text), "GFPGAN").subject == "post_processing"


@given(st.text(st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1, max_size=80).map(str.strip).filter(bool))
def test_every_model_name_is_recognised_in_hordelibs_message(model: str) -> None:
    failure = generation_failure(hordelib_error(" not found on disk!", model), model)
    assert (failure.kind, failure.subject) == ("missing_model", model)
