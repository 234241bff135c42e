"""The pop request this worker sends and how its answers are read."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.pop import (
    NoJob,
    PoppedJob,
    bridge_agent,
    build_pop_request,
    parse_pop_answer,
    seed_number,
)
from horde_worker_regen.inference.capabilities import FAKE_CAPABILITIES
from horde_worker_regen.localhorde.capabilities import bridge_capabilities, bridge_kudos_multiplier
from horde_worker_regen.localhorde.schemas import POP_SCHEMA

KEY = "abcdefghijklmnopqrstuv"
JOB_ANSWER: dict[str, Any] = {
    "payload": {
        "prompt": "a red fox ### blurry",
        "ddim_steps": 28,
        "n_iter": 2,
        "seed": "3141592653",
        "sampler_name": "k_dpmpp_2m",
        "cfg_scale": 6.5,
        "denoising_strength": 0.7,
        "height": 768,
        "width": 1024,
        "post_processing": ["RealESRGAN_x2plus", "CodeFormers"],
        "karras": True,
        "tiling": False,
        "hires_fix": False,
        "transparent": False,
        "image_is_control": False,
        "return_control_map": False,
        "use_nsfw_censor": True,
    },
    # Deliberately not in sorted order: the SDK model sorts ids, the pairing must follow the answer.
    "id": "b064d17b-7b2b-406b-8883-61e77ef95b25",
    "ids": ["b064d17b-7b2b-406b-8883-61e77ef95b25", "53b99999-95ac-4d19-a411-a6da45964fe0"],
    "messages": [],
    "ttl": 270,
    "skipped": {},
    "model": "AlbedoBase XL (SDXL)",
    "source_image": "https://r2.example/src.webp?sig",
    "source_processing": "inpainting",
    "source_mask": None,
    "extra_source_images": None,
    "r2_upload": "https://r2.example/b064.webp",
    "r2_uploads": ["https://r2.example/b064.webp", "https://r2.example/53b9.webp"],
}
NO_JOB_ANSWER: dict[str, Any] = {
    "payload": {
        "ddim_steps": 30,
        "n_iter": 1,
        "sampler_name": "k_euler_a",
        "cfg_scale": 7.5,
        "height": 512,
        "width": 512,
        "karras": False,
        "tiling": False,
        "hires_fix": False,
        "transparent": False,
        "image_is_control": False,
        "return_control_map": False,
    },
    "id": None,
    "ids": [],
    "messages": [],
    "ttl": None,
    "skipped": {"max_pixels": 1, "models": 3, "nsfw": 0},
    "model": None,
    "source_image": None,
    "source_processing": "img2img",
    "source_mask": None,
    "extra_source_images": None,
    "r2_upload": None,
    "r2_uploads": None,
}


def test_every_field_the_server_reads_is_sent_with_the_configured_value() -> None:
    data = BridgeData(
        api_key=KEY,
        dreamer_name="Explicit",
        max_batch=6,
        max_power=32,
        nsfw=False,
        blacklist=["spider"],
        max_threads=2,
        priority_usernames=["db0#1"],
        allow_painting=False,
        allow_unsafe_ip=False,
        allow_controlnet=True,
        allow_lora=True,
        limit_max_steps=True,
        inference_backend="fake",
    )
    body = HordeClient.body_of(build_pop_request(data, ["Deliberate"], bridge_agent(1)))
    assert set(body) == set(POP_SCHEMA["properties"])  # nothing left to the server's defaults
    assert body["amount"] == 6 and body["max_pixels"] == 32 * 8 * 64 * 64 and body["threads"] == 2
    assert body["nsfw"] is False and body["blacklist"] == ["spider"] and body["priority_usernames"] == ["db0#1"]
    assert body["allow_painting"] is False and body["allow_unsafe_ipaddr"] is False
    assert body["allow_controlnet"] is True and body["allow_lora"] is True and body["limit_max_steps"] is True
    assert KEY not in str(body)  # the key travels as a header only


def test_the_bridge_agent_claims_what_the_fake_backend_promises() -> None:
    agent = bridge_agent(FAKE_CAPABILITIES.version)
    assert agent == "AI Horde Worker reGen:1:https://github.com/Haidra-Org/horde-worker-reGen"
    claimed = bridge_capabilities(agent)
    assert {"img2img", "inpainting", "r2", "r2_source"} <= claimed
    assert not {"lora", "textual_inversion", "extra_source_images", "flux"} & claimed
    assert bridge_kudos_multiplier(agent) == 0.9  # an older official version, honestly


def test_a_job_answer_keeps_the_hordes_id_and_upload_order() -> None:
    job = parse_pop_answer(copy.deepcopy(JOB_ANSWER))
    assert isinstance(job, PoppedJob)
    assert job.ids == tuple(JOB_ANSWER["ids"])
    assert job.upload_urls == tuple(JOB_ANSWER["r2_uploads"])
    spec = job.spec
    assert (spec.width, spec.height, spec.steps, spec.n_iter) == (1024, 768, 28, 2)
    assert spec.seed == 3141592653 and spec.seed_of(1) == 3141592653  # one seed for the whole batch
    assert spec.sampler_name == "k_dpmpp_2m" and spec.post_processing == ("RealESRGAN_x2plus", "CodeFormers")
    assert spec.source_processing == "inpainting" and spec.model == "AlbedoBase XL (SDXL)"
    assert job.sources.source_image == "https://r2.example/src.webp?sig" and job.ttl == 270
    assert job.use_nsfw_censor is True


def test_source_processing_means_nothing_without_a_source_image() -> None:
    answer = copy.deepcopy(JOB_ANSWER)
    answer["source_image"] = None
    answer["source_processing"] = "img2img"
    job = parse_pop_answer(answer)
    assert isinstance(job, PoppedJob) and job.spec.source_processing == "txt2img"


def test_no_job_is_told_by_ids_not_by_the_default_filled_payload() -> None:
    answer = parse_pop_answer(copy.deepcopy(NO_JOB_ANSWER))
    assert answer == NoJob({"max_pixels": 1, "models": 3})


@pytest.mark.parametrize(("seed", "number"), [("42", 42), (" 7 ", 7), (str(2**32 + 5), 5), ("abc", 6513249)])
def test_seeds_arrive_as_digit_strings(seed: str, number: int) -> None:
    assert seed_number(seed) == number
