"""strip_background's model reaches rembg from the worker's verified file, and rembg never downloads it.

rembg (2.0.69) reads `$U2NET_HOME/u2net.onnx` through pooch, which downloads the file when it is missing
or when its md5 is not the published one. These tests run rembg's own session in a subprocess (rembg is
imported only in inference children) with its downloads sent to a counting proxy (`network_trap`): the
environment the inference child gets makes rembg read the stand-in and reach for nothing, and without
`MODEL_CHECKSUM_DISABLED` the same stand-in would make rembg go and download the real file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.inference.backend import FeatureUnsupported
from horde_worker_regen.inference.background_removal import rembg_environment, strip_background
from horde_worker_regen.inference.hordelib_settings import HordelibSettings, hordelib_environment
from horde_worker_regen.models.post_processor_files import U2NET
from tests.models.network_trap import NetworkTrap, network_trap
from tests.models.u2net_stand_in import u2net_stand_in
from tests.support import REPO_ROOT

# rembg's u2net session from whatever U2NET_HOME says; prints the mask's corner values (red: kept, blue: not).
SCRIPT = """
import rembg
from PIL import Image
image = Image.new("RGB", (64, 64), (0, 0, 255))
image.paste((255, 0, 0), (0, 0, 32, 64))
mask = rembg.new_session("u2net").predict(image)[0]
print(mask.getpixel((2, 2)), mask.getpixel((60, 60)))
"""


def _install_stand_in(cache_home: Path) -> Path:
    path = U2NET.path_under(cache_home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(u2net_stand_in())
    return path


def _run_rembg(environment: dict[str, str], trap: NetworkTrap) -> subprocess.CompletedProcess[str]:
    inherited = {
        key: value for key, value in os.environ.items() if key not in ("U2NET_HOME", "MODEL_CHECKSUM_DISABLED")
    }
    env = {**inherited, **environment, **trap.environment(), "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_child_s_environment_points_rembg_at_the_worker_s_folder(tmp_path: Path) -> None:
    settings = HordelibSettings.from_bridge_data(BridgeData(cache_home=tmp_path / "models"), 0)
    environment = hordelib_environment(settings, has_gpu=False)
    assert Path(environment["U2NET_HOME"]) == U2NET.path_under(settings.cache_home).parent
    assert Path(environment["U2NET_HOME"]) == settings.cache_home / "u2net"
    assert environment["MODEL_CHECKSUM_DISABLED"]  # the worker's sha256 stands in for rembg's md5


def test_rembg_runs_the_verified_file_and_reaches_for_no_network(tmp_path: Path) -> None:
    _install_stand_in(tmp_path)
    with network_trap() as trap:
        result = _run_rembg(rembg_environment(tmp_path), trap)
        assert trap.connections == 0
    assert result.returncode == 0, result.stderr
    kept, dropped = map(int, result.stdout.split())
    assert kept > 200 and dropped < 50  # the stand-in's mask: the red half kept, the blue half cut away


def test_without_the_checksum_switch_rembg_would_download_over_a_file_it_does_not_know(tmp_path: Path) -> None:
    """The reason `MODEL_CHECKSUM_DISABLED` is set: rembg's md5 check fails on any other bytes (a stand-in, a
    mirror's own build) and it then downloads the real file over them; the trap sees it try."""
    model = _install_stand_in(tmp_path)
    with network_trap() as trap:
        result = _run_rembg({"U2NET_HOME": str(model.parent)}, trap)
        assert trap.connections >= 1
    assert result.returncode != 0  # the download failed at the trap
    assert model.read_bytes() == u2net_stand_in()  # pooch writes to a temporary file first: nothing replaced


def test_a_missing_model_is_refused_before_rembg_could_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(FeatureUnsupported, match="downloads and verifies first") as raised:
        strip_background(Image.new("RGB", (8, 8)), tmp_path)
    assert (raised.value.kind, str(U2NET.path_under(tmp_path)) in str(raised.value)) == ("unsupported_feature", True)
