"""Which request a worker gets (§3.2), skip reasons (§3.3), bridge gating (§3.9), batch and ttl."""

from __future__ import annotations

from typing import Any

import pytest

from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from tests.localhorde.support import WEBP_B64, Client, pop, queue

CONTROLNET: dict[str, Any] = {"source_image": WEBP_B64, "params": {"control_type": "canny"}}


# (request fields, pop overrides that refuse it, the skipped key) — the opposite pop takes it.
def regen(version: str) -> dict[str, str]:
    """Pop overrides claiming a reGen version."""
    return {"bridge_agent": f"AI Horde Worker reGen:{version}:https://example.invalid"}


QR = {"workflow": "qr_code", "extra_texts": [{"text": "https://x", "reference": "qr_code"}]}
FLUX = ["Flux.1-Schnell fp8 (Compact)"]
UNKNOWN = {"bridge_agent": "SomeOtherWorker:99.0.0:https://x"}

# (id, request fields, pop overrides that refuse it, the skipped key) — a plain pop takes it.
FILTERS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("max_pixels", {"params": {"width": 1024, "height": 1024}}, {"max_pixels": 262144}, "max_pixels"),
    ("models", {"models": ["SDXL 1.0"]}, {"models": ["Deliberate"]}, "models"),
    ("nsfw", {"nsfw": True}, {"nsfw": False}, "nsfw"),
    ("img2img", {"source_image": WEBP_B64}, {"allow_img2img": False}, "img2img"),
    ("painting", {"source_image": WEBP_B64, "source_processing": "inpainting"}, {"allow_painting": False}, "painting"),
    ("pp", {"params": {"post_processing": ["GFPGAN"]}}, {"allow_post_processing": False}, "post-processing"),
    ("lora", {"params": {"loras": [{"name": "247778"}]}}, {"allow_lora": False}, "lora"),
    ("controlnet", CONTROLNET, {"allow_controlnet": False}, "controlnet"),
    ("blacklist", {}, {"blacklist": ["FOX"]}, "blacklist"),
    ("performance", {}, {"extra_slow_worker": True}, "performance"),
    ("step_count", {"params": {"steps": 50}}, {"limit_max_steps": True}, "step_count"),
    ("unknown-bridge", {}, {"bridge_agent": "SomeOtherWorker:99.0.0:https://x"}, "bridge_version"),
    ("lora-on-v1", {"params": {"loras": [{"name": "1"}]}}, regen("1.0.0"), "bridge_version"),
    ("lcm-on-v2", {"params": {"sampler_name": "lcm"}}, regen("2.0.0"), "bridge_version"),
    ("new-upscaler-on-v12", {"params": {"post_processing": ["4xNomos8kSC"]}}, regen("12.0.0"), "bridge_version"),
    (
        "lora-version-on-v2",
        {"params": {"loras": [{"name": "1", "is_version": True}]}},
        regen("2.0.0"),
        "bridge_version",
    ),
    ("qr-code-on-v6", {"params": QR}, regen("6.0.0"), "bridge_version"),
    ("flux-on-v8", {"models": FLUX}, {"models": FLUX, **regen("8.0.0")}, "bridge_version"),
    (
        "qr-code-on-sdxl-needs-allow-sdxl-controlnet",
        {"models": ["SDXL 1.0"], "params": QR},
        {"models": ["SDXL 1.0"], "allow_sdxl_controlnet": False},
        "controlnet",
    ),
    (
        "transparent-needs-allow-sdxl-controlnet",
        {"models": ["SDXL 1.0"], "params": {"transparent": True}},
        {"models": ["SDXL 1.0"], "allow_sdxl_controlnet": False},
        "bridge_version",
    ),
    ("ddim-karras-on-unknown-bridge", {"r2": False, "params": {"sampler_name": "DDIM"}}, UNKNOWN, "bridge_version"),
    (
        "lcm-on-unknown-bridge",
        {"r2": False, "params": {"sampler_name": "lcm", "karras": False}},
        UNKNOWN,
        "bridge_version",
    ),
    ("lora-on-unknown-bridge", {"r2": False, "params": {"loras": [{"name": "1"}]}}, UNKNOWN, "bridge_version"),
]


@pytest.mark.parametrize(
    ("request_fields", "refusing", "reason"), [f[1:] for f in FILTERS], ids=[f[0] for f in FILTERS]
)
async def test_filter_skips_and_counts(
    *,
    client: Client,
    horde: LocalHorde,
    owner: User,
    requester: User,
    request_fields: dict[str, Any],
    refusing: dict[str, Any],
    reason: str,
) -> None:
    queue(horde, requester, "a red fox in snow", **request_fields)
    status, body = await pop(client, owner, name="refusing", **refusing)
    assert status == 200 and body["ids"] == []
    assert body["skipped"][reason] == 1
    accepting = {"models": refusing.get("models", ["Deliberate"])}
    if "Flux" in str(accepting["models"]) or "SDXL" in str(request_fields.get("models")):
        accepting["models"] = request_fields.get("models", accepting["models"])
    status, body = await pop(client, owner, name="accepting", **accepting)
    assert status == 200 and len(body["ids"]) == 1


async def test_untrusted_workers_skip_trusted_only_requests(client: Client, horde: LocalHorde, requester: User) -> None:
    queue(horde, requester, trusted_workers=True)
    untrusted = horde.add_user("newbie")
    _, body = await pop(client, untrusted)
    assert body["ids"] == [] and body["skipped"]["untrusted"] == 1


async def test_upfront_kudos(client: Client, horde: LocalHorde, owner: User) -> None:
    poor = horde.add_user("poor", kudos=1)
    queue(horde, poor)
    _, body = await pop(client, owner, require_upfront_kudos=True)
    assert body["ids"] == [] and body["skipped"]["kudos"] == 1
    _, body = await pop(client, owner, name="generous", require_upfront_kudos=False)
    assert len(body["ids"]) == 1


async def test_worker_targeting(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    await pop(client, owner, name="chosen")
    await pop(client, owner, name="other")
    chosen = horde.worker("chosen")
    assert chosen is not None
    queue(horde, requester, workers=[chosen.id])
    _, body = await pop(client, owner, name="other")
    assert body["ids"] == [] and body["skipped"]["worker_id"] == 1
    _, body = await pop(client, owner, name="chosen")
    assert len(body["ids"]) == 1


async def test_inpainting_only_models_are_not_used_for_txt2img(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester)
    _, body = await pop(client, owner, models=["Deliberate Inpainting"])
    assert body["ids"] == [] and body["skipped"]["models"] == 1
    queue(horde, requester, source_image=WEBP_B64, source_processing="inpainting")
    _, body = await pop(client, owner, models=["Deliberate Inpainting"])
    assert body["model"] == "Deliberate Inpainting" and body["source_processing"] == "inpainting"


async def test_model_is_one_both_sides_name_in_the_requests_order(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester, models=["Dreamshaper", "SDXL 1.0", "Deliberate"])
    _, body = await pop(client, owner, models=["Deliberate", "SDXL 1.0"])
    assert body["model"] == "SDXL 1.0"


async def test_unnamed_requests_run_on_a_declared_model(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester)
    _, body = await pop(client, owner, models=["Dreamshaper", "Deliberate"])
    assert body["model"] == "Dreamshaper"


async def test_unknown_bridge_gets_only_requests_without_r2(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester, "with r2")
    queue(horde, requester, "without r2", r2=False)
    _, body = await pop(client, owner, bridge_agent="MyOwnWorker:1.0.0:https://x")
    assert body["payload"]["prompt"] == "without r2"
    _, body = await pop(client, owner, bridge_agent="MyOwnWorker:1.0.0:https://x")
    assert body["ids"] == [] and body["skipped"]["bridge_version"] == 1


@pytest.mark.parametrize(
    ("agent", "request_fields"),
    [
        (regen("3.0.0")["bridge_agent"], {"params": {"sampler_name": "lcm"}}),
        (regen("2.0.0")["bridge_agent"], {"params": {"sampler_name": "DDIM", "karras": True}}),
        ("SomeOtherWorker:1.0.0:https://x", {"r2": False, "params": {"sampler_name": "DDIM", "karras": False}}),
        ("SomeOtherWorker:1.0.0:https://x", {"r2": False, "params": {"sampler_name": "k_dpmpp_sde"}}),
        ("SomeOtherWorker:1.0.0:https://x", {"r2": False, "params": {"sampler_name": "dpmsolver"}}),
    ],
)
async def test_samplers_the_bridge_supports_are_served(
    *, client: Client, horde: LocalHorde, owner: User, requester: User, agent: str, request_fields: dict[str, Any]
) -> None:
    queue(horde, requester, **request_fields)
    status, body = await pop(client, owner, bridge_agent=agent)
    assert status == 200 and len(body["ids"]) == 1
    assert body["payload"]["sampler_name"] == request_fields["params"]["sampler_name"]


async def test_unknown_bridge_cannot_take_img2img(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester, r2=False, source_image=WEBP_B64)
    _, body = await pop(client, owner, bridge_agent="SomeOtherWorker:1.0.0:https://x")
    assert body["ids"] == [] and body["skipped"]["img2img"] == 1


async def test_special_models_are_not_given_unnamed_requests(
    client: Client, horde: LocalHorde, requester: User
) -> None:
    custom = horde.add_user("custom", trusted=True, roles=["customizer"])
    queue(horde, requester, "unnamed")
    _, body = await pop(client, custom, models=["Deliberate", "horde_special_test"])
    assert body["ids"] == [] and body["skipped"]["models"] == 1
    queue(horde, requester, "named", models=["Deliberate"])
    _, body = await pop(client, custom, models=["Deliberate", "horde_special_test"])
    assert body["payload"]["prompt"] == "named" and body["model"] == "Deliberate"


async def test_owner_and_priority_users_come_first_then_kudos_then_age(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User
) -> None:
    poor = horde.add_user("poor", kudos=10)
    rich = horde.add_user("rich", kudos=10_000)
    friend = horde.add_user("friend", kudos=0)
    queue(horde, poor, "poor old")
    clock.advance(1)
    queue(horde, rich, "rich")
    clock.advance(1)
    queue(horde, poor, "poor new")
    clock.advance(1)
    queue(horde, friend, "friend")
    clock.advance(1)
    queue(horde, owner, "own")
    prompts = []
    for _ in range(5):
        _, body = await pop(client, owner, priority_usernames=[friend.alias])
        prompts.append(body["payload"]["prompt"])
    assert prompts[:2] in (["own", "friend"], ["friend", "own"])
    assert prompts[2:] == ["rich", "poor old", "poor new"]


async def test_waiting_time_raises_priority(client: Client, clock: FakeClock, horde: LocalHorde, owner: User) -> None:
    early = horde.add_user("early", kudos=0)
    late = horde.add_user("late", kudos=100)
    queue(horde, early, "waited")
    clock.advance(30)  # +150 priority for waiting 30 s
    queue(horde, late, "rich but new")
    _, body = await pop(client, owner)
    assert body["payload"]["prompt"] == "waited"


async def test_batches_follow_the_formula_and_drain_the_request(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    wp = queue(horde, requester, params={"n": 10})
    sizes = []
    for _ in range(4):
        _, body = await pop(client, owner, amount=4, max_pixels=1048576)
        sizes.append(len(body["ids"]))
    assert sizes == [4, 4, 2, 0]
    assert wp.n == 0


async def test_batch_uses_the_stored_max_pixels(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    queue(horde, requester, params={"n": 8, "width": 768, "height": 768})
    _, body = await pop(client, owner, amount=8, max_pixels=1048576)
    assert len(body["ids"]) == 4


async def test_qr_code_disables_batching(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    queue(
        horde,
        requester,
        params={"n": 4, "workflow": "qr_code", "extra_texts": [{"text": "https://x", "reference": "qr_code"}]},
    )
    _, body = await pop(client, owner, amount=4, models=["SDXL 1.0"])
    assert len(body["ids"]) == 1 and body["payload"]["workflow"] == "qr_code"


@pytest.mark.parametrize(
    ("request_fields", "models", "expected"),
    [
        ({}, ["Deliberate"], 150),
        ({"params": {"width": 1024, "height": 1024}}, ["Deliberate"], 270),
        ({"params": {"width": 1536, "height": 768, "steps": 40, "sampler_name": "k_euler"}}, ["Deliberate"], 390),
        ({"params": {"width": 1024, "height": 1024, "steps": 25, "sampler_name": "k_dpmpp_sde"}}, ["Deliberate"], 430),
        (
            {"params": {"width": 1024, "height": 1024, "steps": 8}, "models": ["Flux.1-Schnell fp8 (Compact)"]},
            ["Flux.1-Schnell fp8 (Compact)"],
            282,
        ),
        # Only the *requested* models' baselines count: an unnamed request on a flux worker is not tripled.
        ({"params": {"width": 1024, "height": 1024, "steps": 8}}, ["Flux.1-Schnell fp8 (Compact)"], 150),
        ({"params": {"width": 1024, "height": 1024}, "source_image": WEBP_B64}, ["Deliberate"], 222),
    ],
)
async def test_ttl_in_the_pop(
    *,
    client: Client,
    horde: LocalHorde,
    owner: User,
    requester: User,
    request_fields: dict[str, Any],
    models: list[str],
    expected: int,
) -> None:
    queue(horde, requester, **request_fields)
    _, body = await pop(client, owner, models=models, max_pixels=4194304)
    assert body["ttl"] == expected


async def test_extra_slow_worker_ttl_and_request_expiry(
    client: Client, clock: FakeClock, horde: LocalHorde, owner: User, requester: User
) -> None:
    wp = queue(horde, requester, extra_slow_workers=True)
    _, body = await pop(client, owner, extra_slow_worker=True)
    assert body["ttl"] == 450
    assert wp.expiry == clock.now() + 3600


async def test_img2img_payload_has_source_urls(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    queue(
        horde,
        requester,
        source_image=WEBP_B64,
        source_processing="inpainting",
        source_mask=WEBP_B64,
        params={"denoising_strength": 0.6},
    )
    _, body = await pop(client, owner)
    assert "/r2/stable-horde-source-images/" in body["source_image"] and "_src.webp?" in body["source_image"]
    assert "_msk.webp?" in body["source_mask"]
    assert body["source_processing"] == "inpainting"
    assert body["payload"]["denoising_strength"] == 0.6


async def test_remix_sends_extra_source_images(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    queue(
        horde,
        requester,
        models=["Stable Cascade 1.0"],
        source_image=WEBP_B64,
        source_processing="remix",
        extra_source_images=[{"image": WEBP_B64, "strength": 0.5}, {"image": "https://example.invalid/a.webp"}],
    )
    _, body = await pop(client, owner, models=["Stable Cascade 1.0"], bridge_agent="AI Horde Worker reGen:4.0.0:x")
    assert body["ids"] == [] and body["skipped"]["bridge_version"] == 1
    _, body = await pop(client, owner, name="new", models=["Stable Cascade 1.0"])
    extra = body["extra_source_images"]
    assert "_src_0.webp?" in extra[0]["image"] and extra[0]["strength"] == 0.5
    assert extra[1] == {"image": "https://example.invalid/a.webp", "strength": 1.0}


async def test_controlnet_payload(client: Client, horde: LocalHorde, owner: User, requester: User) -> None:
    queue(horde, requester, **CONTROLNET)
    _, body = await pop(client, owner)
    assert body["payload"]["control_type"] == "canny" and body["payload"]["ddim_steps"] == 20
    assert body["ttl"] == 150


async def test_faulted_requests_stop_being_offered(
    client: Client, horde: LocalHorde, owner: User, requester: User
) -> None:
    wp = queue(horde, requester, params={"n": 1})
    for attempt in range(3):
        _, body = await pop(client, owner)
        assert len(body["ids"]) == 1, attempt
        resp = await client.post(
            "/api/v2/generate/submit",
            json={"id": body["ids"][0], "generation": "Faulted", "state": "faulted", "seed": 1},
            headers={"apikey": owner.api_key},
        )
        assert resp.status == 200
    assert wp.faulted is True
    _, body = await pop(client, owner)
    assert body["ids"] == []
