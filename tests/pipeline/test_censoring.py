"""Every image goes through the safety process; each censoring case ends as the contract says.

One scenario runs two workers in turn against one local horde: an SFW worker (`nsfw: false`) on the
SFW request, then an NSFW worker with a censorlist on the other cases. Each case is its own test. The
workers run in this process, their children (the fake safety backend's core among them) on threads.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.testing import RunningLocalHorde, serve_local_horde
from horde_worker_regen.localhorde.urls import GENERATIONS_BUCKET
from horde_worker_regen.safety.censor import censor_image
from tests.worker_support import WorkerInProcess, generations_of, queue, worker_folder

NSFW = "<fake:nsfw>"
CSAM = "<fake:csam>"
CENSORED_WORD = "forbiddenword"
WIDTH, HEIGHT = 512, 768


@dataclass(frozen=True)
class Delivered:
    """What the horde holds for one id."""

    completed: bool
    faulted: bool
    censored: bool
    gen_metadata: list[dict[str, Any]]
    image: bytes


# The NSFW worker's cases: prompt and request fields.
NSFW_WORKER_CASES: dict[str, dict[str, Any]] = {
    "csam": {"prompt": f"a scene {CSAM}", "nsfw": True},
    "requester_censor": {"prompt": f"a statue {NSFW}", "nsfw": False, "censor_nsfw": True},
    "censorlist": {"prompt": f"a {CENSORED_WORD} painting {NSFW}", "nsfw": True},
    "nsfw_allowed": {"prompt": f"a figure study {NSFW}", "nsfw": True},
    "clean": {"prompt": "a lighthouse", "nsfw": True, "censor_nsfw": True},
}
SFW_WORKER_CASE = {"prompt": f"a beach {NSFW}", "nsfw": False, "censor_nsfw": False}


async def _run_worker(folder: Path) -> None:
    worker = WorkerInProcess(folder)
    assert await worker.run() == 0
    assert worker.errors == []
    assert len(worker.of_kind("job_checked")) == len(worker.of_kind("job_ended"))  # every job went through safety


def _delivered(horde: RunningLocalHorde, wp: Any) -> list[Delivered]:
    found = []
    for pg in generations_of(horde, wp):
        stored = horde.state.objects.get(GENERATIONS_BUCKET, f"{pg.id}.webp")
        found.append(
            Delivered(pg.is_completed, pg.faulted, pg.censored, pg.gen_metadata, stored.data if stored else b"")
        )
    return found


async def _scenario(tmp_path: Path) -> dict[str, list[Delivered]]:
    async with serve_local_horde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False)) as horde:
        owner = horde.add_user("owner", trusted=True)
        requester = horde.add_user("requester", trusted=True, kudos=1_000_000)

        def request(case: dict[str, Any]) -> Any:
            fields = {key: value for key, value in case.items() if key != "prompt"}
            return queue(horde, requester, case["prompt"], n=2, width=WIDTH, height=HEIGHT, **fields)

        sfw_request = request(SFW_WORKER_CASE)
        sfw_folder = worker_folder(
            tmp_path / "sfw", horde, owner, dreamer_name="SFW Dreamer", nsfw=False, max_batch=2, max_power=64
        )
        await _run_worker(sfw_folder)
        requests = {name: request(case) for name, case in NSFW_WORKER_CASES.items()}
        nsfw_folder = worker_folder(
            tmp_path / "nsfw",
            horde,
            owner,
            dreamer_name="NSFW Dreamer",
            nsfw=True,
            censorlist=[CENSORED_WORD.upper()],
            max_batch=2,
            max_power=64,
        )
        await _run_worker(nsfw_folder)
        results = {name: _delivered(horde, wp) for name, wp in requests.items()}
        results["sfw_worker"] = _delivered(horde, sfw_request)
        return results


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Delivered]]:
    """Run the scenario once for every case of this module."""
    return asyncio.run(_scenario(tmp_path_factory.mktemp("censoring")))


def _assert_censored(results: list[Delivered], kind: str) -> None:
    assert len(results) == 2
    for result in results:
        assert result.completed and not result.faulted and result.censored
        assert {"type": "censorship", "value": kind} in result.gen_metadata
        assert result.image == censor_image(kind, WIDTH, HEIGHT)


def test_csam_is_always_censored(delivered: dict[str, list[Delivered]]) -> None:
    _assert_censored(delivered["csam"], "csam")


def test_an_sfw_worker_censors_nsfw_images(delivered: dict[str, list[Delivered]]) -> None:
    _assert_censored(delivered["sfw_worker"], "nsfw")


def test_the_requesters_nsfw_censor_is_honoured(delivered: dict[str, list[Delivered]]) -> None:
    _assert_censored(delivered["requester_censor"], "nsfw")


def test_a_censorlist_word_censors_nsfw_images_on_an_nsfw_worker(delivered: dict[str, list[Delivered]]) -> None:
    _assert_censored(delivered["censorlist"], "nsfw")


@pytest.mark.parametrize("case", ["nsfw_allowed", "clean"])
def test_images_that_need_no_censoring_are_delivered_as_generated(
    delivered: dict[str, list[Delivered]], case: str
) -> None:
    for result in delivered[case]:
        assert result.completed and not result.censored
        assert not any(entry["type"] == "censorship" for entry in result.gen_metadata)
        assert result.image[:4] == b"RIFF" and result.image not in (censor_image("nsfw", WIDTH, HEIGHT),)
