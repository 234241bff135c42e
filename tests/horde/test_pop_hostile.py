"""A pop answer outside the contract faults only its own job, with the reason; it never stops the worker."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.horde.payload_checks import MAX_PROMPT_CHARS
from horde_worker_regen.horde.pop import MalformedPop, PoppedJob, bridge_agent, build_pop_request, parse_pop_answer
from horde_worker_regen.jobs.submitter import Submitter
from tests.horde.test_pop import JOB_ANSWER
from tests.jobs.conftest import HordeSession
from tests.jobs.test_pipeline_intake import _pipeline
from tests.worker_support import MODEL, queue


def _with_payload(**changes: Any) -> dict[str, Any]:
    answer = copy.deepcopy(JOB_ANSWER)
    answer["payload"].update(changes)
    return answer


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sampler_name": "k_evil"}, "unknown sampler 'k_evil'"),
        ({"width": 1_000_000}, "width 1000000 is outside 64..3072"),
        ({"height": 100}, "not a multiple of 64"),
        ({"width": "512"}, "width '512' is not a whole number"),
        ({"ddim_steps": 10**9}, "ddim_steps"),
        ({"cfg_scale": "abc"}, "cfg_scale"),
        ({"post_processing": ["rm -rf"]}, "unknown post-processor"),
        ({"prompt": "a" * MAX_PROMPT_CHARS * 30}, f"a prompt of {MAX_PROMPT_CHARS * 30} characters"),
        ({"prompt": 42}, "the prompt is not text"),
        ({"seed": {"not": "a seed"}}, "the payload was not understood (payload.seed"),
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


async def test_a_rejected_job_is_faulted_on_the_horde_and_the_next_job_runs(horde_session: HordeSession) -> None:
    horde = horde_session.horde
    hostile = queue(horde, horde_session.requester, "a trap")
    data = BridgeData(api_key=horde_session.owner.api_key, dreamer_name="Unit Dreamer", horde_url=horde.api_url)
    request = build_pop_request(data, [MODEL], bridge_agent(1))
    answer = await horde_session.client.pop(request)
    answer["payload"]["sampler_name"] = "k_evil"  # what a broken or hostile horde might send
    pipeline, supervisor = _pipeline(1)
    pipeline._submitter = Submitter(horde_session.client)
    record = pipeline.job_popped(parse_pop_answer(answer), time.monotonic())  # type: ignore[arg-type]
    while not record.state.is_terminal:
        await asyncio.wait_for(pipeline.registry.wait_empty(), 10)
    assert "unknown sampler 'k_evil'" in (record.fault_reason or "")
    assert all(pg.faulted for pg in horde.state.generations_of(hostile))
    assert supervisor.sent == []  # nothing of it reached an inference process
    # The fault re-queued the image at once; popped again with a sound payload, it runs.
    second = parse_pop_answer(await horde_session.client.pop(request))
    assert isinstance(second, PoppedJob) and second.rejected is None
    pipeline.job_popped(second, time.monotonic())
    assert [message.spec.prompt for _, message in supervisor.sent] == ["a trap"]
