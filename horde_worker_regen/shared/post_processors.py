"""The post-processor names the horde accepts in a job's `post_processing` list."""

from __future__ import annotations

KNOWN_POST_PROCESSORS = frozenset({
    "GFPGAN", "RealESRGAN_x4plus", "RealESRGAN_x2plus", "RealESRGAN_x4plus_anime_6B", "NMKD_Siax",
    "4x_AnimeSharp", "CodeFormers", "strip_background", "4xNomos8kSC", "4xLSDIRplus",
    "4xNomosWebPhoto_RealPLKSR", "4xNomos2_realplksr_dysample", "4xNomos2_hq_dat2",
    "2xModernSpanimationV1", "GFPGANv1.3", "RestoreFormer",
})  # fmt: skip
