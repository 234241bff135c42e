"""The start-up checks of an alchemist-only worker: no image model, no dreamer name needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from horde_worker_regen.commands.startup_checks import StartupError, check_startup, refuse_settings
from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.models.meta_instructions import ModelSelection

KEY = "k" * 22


async def test_an_alchemist_only_worker_needs_no_model_and_no_dreamer_name(tmp_path: Path) -> None:
    data = BridgeData(api_key=KEY, dreamer=False, alchemist=True, alchemist_name="Alch", cache_home=tmp_path)
    refuse_settings(data)
    reported: list[ModelSelection] = []
    checked = await check_startup(data, reported.append)  # no model reference is cached here: none is read
    assert checked.selection.models == [] and reported == [checked.selection]


def test_the_alchemist_s_placeholder_name_is_refused_as_the_dreamer_s_is() -> None:
    with pytest.raises(StartupError, match="alchemist_name is not set"):
        refuse_settings(BridgeData(api_key=KEY, dreamer_name="Dreamer", alchemist=True))
    refuse_settings(BridgeData(api_key=KEY, dreamer_name="Dreamer"))  # alchemy off: its name is not used
