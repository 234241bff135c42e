"""A pop answer outside the contract faults only its own job, with the reason; it never stops the worker."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde import pop as pop_module
from horde_worker_regen.horde.client import NotJson
from horde_worker_regen.horde.horde_messages import HordeMessage
from horde_worker_regen.horde.payload_checks import MAX_PROMPT_CHARS
from horde_worker_regen.horde.pop import (
    MalformedPop,
    NoJob,
    PoppedJob,
    bridge_agent,
    build_pop_request,
    parse_pop_answer,
)
from horde_worker_regen.processes.messages import RunJob
from tests.horde.test_pop import JOB_ANSWER, NO_JOB_ANSWER
from tests.jobs.conftest import HordeSession, PipelineFactory
from tests.worker_support import MODEL, queue

MISSING = object()


def _with_payload(**changes: Any) -> dict[str, Any]:
    answer = copy.deepcopy(JOB_ANSWER)
    answer["payload"].update(changes)
    return answer


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sampler_name": "k_evil"}, "payload.sampler_name: unknown sampler 'k_evil'"),
        ({"sampler_name": {"a": 1}}, "payload.sampler_name: expected a sampler name, got an object of 1 field(s)"),
        ({"width": 1_000_000}, "payload.width: 1000000 is outside 64..3072"),
        ({"height": 100}, "payload.height: 100 is not a multiple of 64"),
        ({"width": "512"}, "payload.width: expected a whole number, got text '512'"),
        ({"ddim_steps": 10**9}, "payload.ddim_steps: 1000000000 is outside 1..500"),
        ({"ddim_steps": 10**40}, "payload.ddim_steps: a whole number of about 41 digits is outside 1..500"),
        ({"cfg_scale": "abc"}, "payload.cfg_scale: expected a finite number, got text 'abc'"),
        ({"cfg_scale": float("nan")}, "payload.cfg_scale: expected a finite number, got nan"),
        ({"karras": "yes"}, "payload.karras: expected true or false, got text 'yes'"),
        ({"post_processing": ["rm -rf"]}, "payload.post_processing[0]: unknown post-processor 'rm -rf'"),
        ({"post_processing": {"GFPGAN": 1}}, "payload.post_processing: expected a list, got an object of 1 field(s)"),
        ({"post_processing": [["GFPGAN"]]}, "payload.post_processing[0]: expected a post-processor name, got a list"),
        ({"loras": [{"name": "1", "model": 50}]}, "payload.loras[0].model: 50 is outside -5..5"),
        ({"loras": [{"model": 1}]}, "payload.loras[0].name: is missing"),
        ({"tis": "7808"}, "payload.tis: expected a list, got text '7808'"),
        ({"special": {"a": [[[[[[[[[[1]]]]]]]]]]}}, "payload.special: nests deeper than 8 levels"),
        ({"prompt": "a" * MAX_PROMPT_CHARS * 30}, f"payload.prompt: text of {MAX_PROMPT_CHARS * 30} characters"),
        ({"prompt": 42}, "payload.prompt: expected text, got 42"),
        ({"prompt": None}, "payload.prompt: is missing"),
        ({"seed": {"not": "a seed"}}, "payload.seed: expected a seed of digits, got an object of 1 field(s)"),
        ({"seed": "12ab"}, "payload.seed: expected 1..20 digits, got text '12ab'"),
    ],
)
def test_a_payload_outside_the_contract_is_rejected_with_its_reason(changes: dict[str, Any], reason: str) -> None:
    job = parse_pop_answer(_with_payload(**changes))
    assert isinstance(job, PoppedJob)
    assert job.rejected is not None and reason in job.rejected
    assert job.ids == tuple(JOB_ANSWER["ids"])  # every id is kept, so every one can be faulted
    assert job.upload_urls == tuple(JOB_ANSWER["r2_uploads"])


def test_nul_bytes_are_removed_from_the_prompt() -> None:
    job = parse_pop_answer(_with_payload(prompt="a red\x00 fox\x00"))
    assert isinstance(job, PoppedJob) and job.rejected is None
    assert job.spec.prompt == "a red fox"


@pytest.mark.parametrize("ids", [["x" * 500], [1, 2], "not-a-list", [f"id{n}" for n in range(21)]])
def test_ids_that_cannot_be_faulted_make_the_answer_malformed(ids: Any) -> None:
    answer = copy.deepcopy(JOB_ANSWER)
    answer["ids"], answer["id"] = ids, None
    with pytest.raises(MalformedPop):
        parse_pop_answer(answer)


async def test_a_rejected_job_is_faulted_on_the_horde_and_the_next_job_runs(
    horde_session: HordeSession, pipelines: PipelineFactory
) -> None:
    horde = horde_session.horde
    hostile = queue(horde, horde_session.requester, "a trap")
    data = BridgeData(api_key=horde_session.owner.api_key, dreamer_name="Unit Dreamer", horde_url=horde.api_url)
    request = build_pop_request(data, [MODEL], bridge_agent(1))
    answer = await horde_session.client.pop(request)
    answer["payload"]["sampler_name"] = "k_evil"  # what a broken or hostile horde might send
    pipeline, children = await pipelines(1, hold=True)
    job = parse_pop_answer(answer)
    assert isinstance(job, PoppedJob)
    record = pipeline.job_popped(job, time.monotonic())
    await asyncio.wait_for(pipeline.registry.wait_empty(), 10)
    assert record.state.is_terminal and "unknown sampler 'k_evil'" in (record.fault_reason or "")
    assert all(pg.faulted for pg in horde.state.generations_of(hostile))
    assert list(children.sent) == []  # nothing of it reached an inference process
    # The fault re-queued the image at once; popped again with a sound payload, it runs.
    second = parse_pop_answer(await horde_session.client.pop(request))
    assert isinstance(second, PoppedJob) and second.rejected is None
    pipeline.job_popped(second, time.monotonic())
    assert [message.spec.prompt for _, message in children.sent if isinstance(message, RunJob)] == ["a trap"]


def _with(**changes: Any) -> dict[str, Any]:
    answer = copy.deepcopy(JOB_ANSWER)
    answer.update(changes)
    return answer


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"ttl": "270"}, "ttl: expected a whole number, got text '270'"),
        ({"ttl": None}, "ttl: is missing"),
        ({"ttl": 0}, "ttl: 0 is outside 1..1300000"),
        ({"model": ["AlbedoBase XL (SDXL)"]}, "model: expected text, got a list of 1 item(s)"),
        ({"model": "evil\nmodel"}, "model: text 'evil model' contains control characters"),
        ({"payload": ["a fox"]}, "payload: expected an object, got a list of 1 item(s)"),
        ({"source_image": 3}, "source_image: expected text, got 3"),
        ({"source_processing": {"x": 1}}, "source_processing: expected a source processing name, got an object"),
        ({"extra_source_images": [{"image": None}]}, "extra_source_images[0].image: is missing"),
        ({"extra_source_images": [{"image": "u", "strength": "1"}]}, "extra_source_images[0].strength: expected a"),
        ({"r2_uploads": ["https://r2.example/b064.webp"]}, "r2_uploads: 1 upload URL(s) for 2 id(s)"),
        ({"r2_uploads": "https://r2.example/b064.webp"}, "r2_uploads: expected a list, got text"),
        ({"id": 7}, "id: 7 is not one of the answer's ids"),
    ],
)
def test_a_top_level_field_outside_the_contract_is_rejected_with_its_reason(
    changes: dict[str, Any], reason: str
) -> None:
    job = parse_pop_answer(_with(**changes))
    assert isinstance(job, PoppedJob)
    assert job.rejected is not None and job.rejected.startswith(reason)
    assert job.ids == tuple(JOB_ANSWER["ids"])
    [entry] = job.fault_metadata
    assert entry["value"] == "parse_failed" and entry["ref"] == job.rejected[:255]


def test_the_gen_metadata_of_a_rejection_names_the_kind_of_field() -> None:
    source = parse_pop_answer(_with(source_image=3))
    lora = parse_pop_answer(_with(payload={**JOB_ANSWER["payload"], "loras": 5}))
    assert isinstance(source, PoppedJob) and isinstance(lora, PoppedJob)
    assert source.fault_metadata[0]["type"] == "source_image" and lora.fault_metadata[0]["type"] == "lora"


def test_a_rejection_never_carries_the_whole_value() -> None:
    job = parse_pop_answer(_with_payload(sampler_name="k_" + "x" * 10_000))
    assert isinstance(job, PoppedJob) and job.rejected is not None
    assert len(job.rejected) < 200 and "(10002 characters)" not in job.rejected


def test_repeated_ids_are_rejected_and_each_id_is_kept_once() -> None:
    first = JOB_ANSWER["ids"][0]
    job = parse_pop_answer(_with(ids=[first, first], r2_uploads=["https://a", "https://b"]))
    assert isinstance(job, PoppedJob) and job.rejected == "ids: 1 id(s) repeated"
    assert job.ids == (first,) and job.upload_urls == ("https://a",)


def test_unknown_fields_are_ignored_and_not_passed_on() -> None:
    job = parse_pop_answer(_with(surprise={"a": [1]}, payload={**JOB_ANSWER["payload"], "new_knob": [1, 2]}))
    assert isinstance(job, PoppedJob) and job.rejected is None
    assert "new_knob" not in job.spec.payload and job.spec.payload["sampler_name"] == "k_dpmpp_2m"


@pytest.mark.parametrize("skipped", [["models"], "lots", {"models": "3", "x\n": 2, "nsfw": True, "max_pixels": 2}])
def test_malformed_skipped_counts_never_fault_and_keep_what_is_sound(skipped: Any) -> None:
    answer = copy.deepcopy(NO_JOB_ANSWER)
    answer["skipped"] = skipped
    assert parse_pop_answer(answer) == NoJob({"max_pixels": 2} if isinstance(skipped, dict) else {})
    job = parse_pop_answer(_with(skipped=skipped, messages="not a list"))
    assert isinstance(job, PoppedJob) and job.rejected is None and job.messages == ()


def test_messages_are_read_and_invalid_ones_skipped() -> None:
    messages = [
        {"id": "m1", "message": "be\x1b[31m nice", "origin": "moderator", "expiry": "Thu, 06 Aug 2026"},
        {"id": 2, "message": "no id"},
        "text",
        {"id": "m3", "message": ["not text"]},
    ]
    job = parse_pop_answer(_with(messages=messages))
    assert isinstance(job, PoppedJob)
    assert job.messages == (HordeMessage("m1", "be [31m nice", "moderator", "Thu, 06 Aug 2026"),)


@pytest.mark.parametrize(
    "answer",
    [
        NotJson(12),
        ["ids"],
        "a text",
        42,
        None,
        {"ids": {"a": 1}},
        {"ids": [None]},
        {"ids": "x"},
        {"ids": ["bad\nid"]},
        {"ids": None, "id": ["x"]},
    ],
)
def test_an_answer_whose_ids_cannot_be_read_is_malformed(answer: Any) -> None:
    with pytest.raises(MalformedPop) as raised:
        parse_pop_answer(answer)
    assert len(str(raised.value)) < 120


def test_an_unexpected_error_while_reading_a_job_still_faults_every_id(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(body: Any) -> None:
        raise RecursionError("deep")

    monkeypatch.setattr(pop_module, "job_problem", broken)
    job = parse_pop_answer(copy.deepcopy(JOB_ANSWER))
    assert isinstance(job, PoppedJob) and job.ids == tuple(JOB_ANSWER["ids"])
    assert job.rejected == "(answer): could not be read (RecursionError)"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**20, max_value=10**60) | st.floats()
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
_PATHS = [(name,) for name in JOB_ANSWER if name not in ("ids", "id")] + [
    ("payload", name) for name in (*JOB_ANSWER["payload"], "loras", "tis", "special", "extra_texts", "clip_skip")
]


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(_PATHS), value=_JSON | st.just(MISSING))
def test_any_value_in_any_field_faults_the_job_alone_or_is_accepted(path: tuple[str, ...], value: Any) -> None:
    answer = copy.deepcopy(JOB_ANSWER)
    target = answer["payload"] if len(path) == 2 else answer
    if value is MISSING:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    job = parse_pop_answer(answer)  # never raises: the ids are sound
    assert isinstance(job, PoppedJob) and job.ids == tuple(JOB_ANSWER["ids"])
    if job.rejected is not None:
        assert job.rejected.startswith(".".join(path)) and len(job.rejected) < 300
        assert job.fault_metadata[0]["ref"] == job.rejected[:255]
