"""Random-weight models of the eight level-13 post-processors and of the face helper, for tests and the bench.

Each model is built from spandrel's own architecture class with seeded random weights and saved as a
state dict (`torch.save`) under the catalogue's file name, so spandrel's loader recognises the
architecture and scale from its keys and shapes exactly as it does the real file's. The pixels they
make are meaningless; the sizes, the loading and the plumbing are real.

Small configurations keep the tests fast (horde-v13-and-alchemy.md §2.4); `full_size=True` builds
the real sizes (within 0.1% of the real files' bytes) for honest timings. GFPGAN has no small form
(spandrel's loader assumes the full config), so it is always full-size (about 349 MB). The face
helper's networks (RetinaFace ResNet-50 detection, ParseNet parsing) are built full-size from
hordelib's facelib classes, which need hordelib started (a throw-away cache home, on the CPU); the
random detector's face-class bias is set so low that it finds no face in any image (left alone, it
finds hundreds of "faces" in noise), so tests that need a face substitute the detector.

Building imports torch, so it runs in a subprocess (`python -m tests.realinference.level13_models`):
the test process stays free of torch. Every file is built once per checkout into `tests/.cache` and
copied to where a test wants it.

    build_model("4xNomos8kSC", folder) -> folder / "4xNomos8kSC.pth"
    build_models(names, folder) -> {name: path}
    build_face_helper_files(folder) -> (folder / "detection_Resnet50_Final.pth", folder / "parsing_parsenet.pth")
    install_level13(cache_home) -> every file at the catalogue's place below cache_home
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from horde_worker_regen.models.post_processor_files import BY_NAME, FACE_HELPER_FILES, LEVEL_13_MODELS
from tests.support import REPO_ROOT, building_in_test_cache

RECIPE_VERSION = 2
BUILD_TIMEOUT_S = 900.0
ALL_NAMES: tuple[str, ...] = tuple(model.name for model in LEVEL_13_MODELS)
ALWAYS_FULL = frozenset({"GFPGANv1.3"})
FACE_HELPER = "face_helper"
# The random detector's face logit at every anchor (its background logit is the opposite): face score ~0.
NO_FACE_LOGIT = -30.0


def _cache_folder(cache: Path, name: str, full_size: bool) -> Path:
    size = "full" if full_size or name in ALWAYS_FULL else "small"
    return cache / f"level13-r{RECIPE_VERSION}" / (FACE_HELPER if name == FACE_HELPER else size)


def _place(source: Path, destination: Path) -> Path:
    """A copy of `source` at `destination` (a copy, not a link: a test may rewrite the file it was given)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    shutil.copyfile(source, partial)
    os.replace(partial, destination)
    return destination


def _build_in_subprocess(*arguments: str) -> None:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "tests.realinference.level13_models", *arguments],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        cwd=REPO_ROOT,
        env=environment,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building {' '.join(arguments)} failed:\n{result.stderr[-3000:]}")


def build_models(names: Iterable[str], folder: Path, *, full_size: bool = False) -> dict[str, Path]:
    """Each named post-processor's random-weight file in `folder`, under its catalogue file name."""
    wanted = list(dict.fromkeys(names))
    with building_in_test_cache() as cache:
        cached = {name: _cache_folder(cache, name, full_size) / BY_NAME[name].file.file_name for name in wanted}
        missing = [name for name, path in cached.items() if not path.is_file()]
        for name in missing:  # grouped by the folder they are built into: one subprocess per folder
            cached[name].parent.mkdir(parents=True, exist_ok=True)
        for target in {cached[name].parent for name in missing}:
            names_here = [name for name in missing if cached[name].parent == target]
            _build_in_subprocess("models", str(target), *names_here, *(["--full"] if full_size else []))
        return {name: _place(path, folder / path.name) for name, path in cached.items()}


def build_model(name: str, folder: Path, *, full_size: bool = False) -> Path:
    """Post-processor `name`'s random-weight file in `folder`, under its catalogue file name."""
    return build_models([name], folder, full_size=full_size)[name]


def build_face_helper_files(folder: Path) -> tuple[Path, ...]:
    """The face helper's two random-weight networks in `folder`, under the names hordelib loads."""
    with building_in_test_cache() as cache:
        target = _cache_folder(cache, FACE_HELPER, full_size=True)
        cached = [target / file.file_name for file in FACE_HELPER_FILES]
        if not all(path.is_file() for path in cached):
            target.mkdir(parents=True, exist_ok=True)
            _build_in_subprocess("face-helper", str(target))
        return tuple(_place(path, folder / path.name) for path in cached)


def install_level13(
    cache_home: Path, names: Iterable[str] = ALL_NAMES, *, face_helper: bool = True, full_size: bool = False
) -> dict[str, Path]:
    """The named post-processors (and the face helper's files) where the worker looks for them."""
    placed: dict[str, Path] = {}
    for name in names:
        placed[name] = build_model(name, BY_NAME[name].file.path_under(cache_home).parent, full_size=full_size)
    if face_helper:
        folder = FACE_HELPER_FILES[0].path_under(cache_home).parent
        for path in build_face_helper_files(folder):
            placed[path.name] = path
    return placed


# --- Run in the subprocess (imports torch and spandrel) ---------------------------------------------


def _networks(full_size: bool) -> dict[str, Callable[[], Any]]:
    """How each post-processor's network is built (small, or at the real file's size)."""
    from spandrel.architectures.DAT import DAT  # type: ignore[import-untyped]
    from spandrel.architectures.ESRGAN import ESRGAN  # type: ignore[import-untyped]
    from spandrel.architectures.GFPGAN import GFPGAN  # type: ignore[import-untyped]
    from spandrel.architectures.PLKSR import RealPLKSR  # type: ignore[import-untyped]
    from spandrel.architectures.RestoreFormer import RestoreFormer  # type: ignore[import-untyped]
    from spandrel.architectures.SPAN import SPAN  # type: ignore[import-untyped]

    def esrgan() -> Any:
        return ESRGAN(num_filters=64, num_blocks=23, scale=4) if full_size else ESRGAN(num_filters=16, num_blocks=2)

    def plksr(dysample: bool) -> Callable[[], Any]:
        size = {"dim": 64, "n_blocks": 28, "kernel_size": 17} if full_size else {"dim": 16, "n_blocks": 2}
        return lambda: RealPLKSR(**size, upscaling_factor=4, layer_norm=True, dysample=dysample)

    def dat() -> Any:
        size = {"embed_dim": 180, "depth": [6] * 6, "num_heads": [6] * 6} if full_size else {}
        small = {"embed_dim": 60, "depth": [2, 2], "num_heads": [2, 2]}
        return DAT(**(size or small), split_size=[8, 32], expansion_factor=2.0, upscale=4)

    def restoreformer() -> Any:
        # Six resolution levels, as the real one: with fewer, its attention at 512 px would span
        # 256 x 256 positions (137 GB); thin ones keep a 512 px face at about 4 s on a CPU core.
        small = {"n_embed": 64, "embed_dim": 32, "ch": 32, "ch_mult": (1,) * 6, "z_channels": 32, "num_res_blocks": 1}
        return RestoreFormer() if full_size else RestoreFormer(**small)

    return {
        "4xNomos8kSC": esrgan,
        "4xLSDIRplus": esrgan,
        "4xNomosWebPhoto_RealPLKSR": plksr(dysample=False),
        "4xNomos2_realplksr_dysample": plksr(dysample=True),
        "4xNomos2_hq_dat2": dat,
        "2xModernSpanimationV1": lambda: SPAN(
            num_in_ch=3, num_out_ch=3, feature_channels=64 if full_size else 16, upscale=2
        ),
        "GFPGANv1.3": GFPGAN,
        "RestoreFormer": restoreformer,
    }


def _save(network: Any, path: Path) -> None:
    import torch

    partial = path.with_name(path.name + ".partial")
    torch.save(network.state_dict(), partial)
    os.replace(partial, path)


def _write_models(folder: Path, names: list[str], full_size: bool) -> None:
    import torch

    from horde_worker_regen.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    builders = _networks(full_size)
    for name in names:
        torch.manual_seed(1300 + ALL_NAMES.index(name))  # each file its own, reproducible weights
        _save(builders[name]().eval(), folder / BY_NAME[name].file.file_name)


def _write_face_helper(folder: Path) -> None:
    import torch

    from horde_worker_regen.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    with tempfile.TemporaryDirectory() as home:
        os.environ.update({"AIWORKER_CACHE_HOME": home, "NUMBA_DISABLE_JIT": "1"})
        import hordelib

        hordelib.initialise(setup_logging=None, extra_comfyui_args=["--cpu"], force_normal_vram_mode=False)
        from hordelib.nodes.facerestore_cf.facelib.detection.retinaface.retinaface import RetinaFace
        from hordelib.nodes.facerestore_cf.facelib.parsing.parsenet import ParseNet

        torch.manual_seed(1313)
        detector = RetinaFace(network_name="resnet50", half=False)  # type: ignore[no-untyped-call]
        with torch.no_grad():  # random weights would see hundreds of "faces" in anything: this one sees none
            for head in detector.ClassHead:  # (background, face) logits per anchor, whatever the features
                head.conv1x1.weight.zero_()
                head.conv1x1.bias[0::2] = -NO_FACE_LOGIT
                head.conv1x1.bias[1::2] = NO_FACE_LOGIT
        _save(detector, folder / FACE_HELPER_FILES[0].file_name)
        parser = ParseNet(in_size=512, out_size=512, parsing_ch=19)  # type: ignore[no-untyped-call]
        _save(parser, folder / FACE_HELPER_FILES[1].file_name)


def main(arguments: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    models = commands.add_parser("models")
    models.add_argument("folder", type=Path)
    models.add_argument("names", nargs="+", choices=ALL_NAMES)
    models.add_argument("--full", action="store_true")
    helper = commands.add_parser("face-helper")
    helper.add_argument("folder", type=Path)
    parsed = parser.parse_args(arguments)
    if parsed.command == "models":
        _write_models(parsed.folder, parsed.names, parsed.full)
    else:
        _write_face_helper(parsed.folder)


if __name__ == "__main__":
    main()
