"""The level claimed while the worker runs: decided at start, raised as files land and loaders answer.

The post-processors' files are an in-test double (`FilesDouble`, the attributes the claim reads of
`PostProcessorDownloads`); the loaders' answer is a function the test changes, as the pipeline's
`servable_post_processors` would as inference processes come up. The event log and the statistics
are the worker's own.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from horde_worker_regen.inference.capabilities import FAKE_CAPABILITIES, HORDELIB_CAPABILITIES
from horde_worker_regen.jobs.events import Event, EventLog
from horde_worker_regen.jobs.record import IdOutcome, IdResult, JobState
from horde_worker_regen.pipeline.stats import WorkerStats
from horde_worker_regen.worker.bridge_claim import BridgeClaim, claim_line
from horde_worker_regen.worker.bridge_level import LEVEL_13_NAMES, BridgeLevel
from tests.jobs.test_record import make_record

EIGHT = frozenset(LEVEL_13_NAMES)
TIMEOUT = 5.0


@dataclass
class FilesDouble:
    """Stands in for `PostProcessorDownloads`: what is wanted, on disk, refused, and still to download."""

    wanted: frozenset[str] = EIGHT
    ready: frozenset[str] = frozenset()
    failures: dict[str, str] = field(default_factory=dict)
    bytes_to_download: int = 0  # all of it the level-13 files'

    def bytes_to_download_of(self, names: Collection[str]) -> int:
        return self.bytes_to_download


@dataclass
class Loaders:
    """What the ready inference processes say they load (None: none ready yet)."""

    servable: frozenset[str] | None = None

    def __call__(self) -> frozenset[str] | None:
        return self.servable


def _claim(files: FilesDouble, loaders: Loaders, events: EventLog, stats: WorkerStats) -> BridgeClaim:
    claim = BridgeClaim(HORDELIB_CAPABILITIES, True, events, files=files, servable=loaders)
    claim.follow(lambda level: stats.claim_level(level.level, level.kudos_factor, level.reason))
    return claim


def _levels(events: EventLog) -> list[tuple[int, int | None]]:
    return [(event.fields["level"], event.fields["previous"]) for event in events.of_kind("bridge_level")]


def _submitted(stats: WorkerStats, key: str, reward: float) -> None:
    record = make_record(key, images=1)
    record.state = JobState.SUBMITTED
    record.results = {0: IdResult(IdOutcome.SUBMITTED, reward)}
    stats.job_ended(record)


def test_the_level_rises_to_13_once_the_last_file_lands_and_kudos_follow() -> None:
    files = FilesDouble(ready=EIGHT - {"RestoreFormer", "4xNomos2_hq_dat2"}, bytes_to_download=430_981_656)
    events, stats = EventLog(), WorkerStats()
    claim = _claim(files, Loaders(EIGHT), events, stats)
    assert claim.announce().level == 9
    [started] = events.of_kind("bridge_level")
    assert started.fields["agent"] == "AI Horde Worker reGen:9:https://github.com/Haidra-Org/horde-worker-reGen"
    assert (started.fields["kudos_factor"], started.fields["previous"]) == (0.9, None)
    assert "431 MB to download" in started.fields["reason"]
    _submitted(stats, "before", 10.0)  # paid at level 9

    files.ready, files.bytes_to_download = EIGHT - {"RestoreFormer"}, 290_785_322
    claim.files_changed(files.ready)
    assert _levels(events) == [(9, None)]  # a new reason alone is no new level
    assert "291 MB" in stats.bridge_reason

    files.ready, files.bytes_to_download = EIGHT, 0
    claim.files_changed(files.ready)
    assert _levels(events) == [(9, None), (13, 9)]
    assert (stats.bridge_level, stats.kudos_factor) == (13, 1.0)
    _submitted(stats, "after", 10.0)  # paid at level 13
    assert stats.snapshot().kudos_session == 10.0 * 0.9 + 10.0 * 1.0
    assert stats.kudos == 20.0  # the rewards themselves, before the factor


def test_the_followers_hear_every_level_including_the_first() -> None:
    files, loaders, events = FilesDouble(ready=EIGHT), Loaders(), EventLog()
    claim = BridgeClaim(HORDELIB_CAPABILITIES, True, events, files=files, servable=loaders)
    heard: list[BridgeLevel] = []
    claim.follow(heard.append)
    claim.announce()
    loaders.servable = EIGHT
    claim.refresh()
    claim.refresh()  # nothing new: nothing handed on
    assert [level.level for level in heard] == [9, 9, 13]
    assert heard[0].waiting and "inference process" in heard[0].reason


async def test_an_inference_process_coming_up_raises_the_level_on_the_next_turn() -> None:
    files, loaders, events, stats = FilesDouble(ready=EIGHT), Loaders(), EventLog(), WorkerStats()
    claim = _claim(files, loaders, events, stats)
    events.add_sink(claim.child_event)
    claim.announce()
    loaders.servable = EIGHT  # what the child reported, recorded by its slot after the event
    events.emit("child_started", child="inference-0#1", pid=1, backend="hordelib")
    raised = await events.wait_for(lambda e: e.kind == "bridge_level" and e.fields["level"] == 13, TIMEOUT)
    assert raised.fields["previous"] == 9 and stats.kudos_factor == 1.0


async def test_a_child_whose_loaders_lack_one_keeps_the_level_below_13() -> None:
    files, loaders, events, stats = FilesDouble(ready=EIGHT), Loaders(EIGHT), EventLog(), WorkerStats()
    claim = _claim(files, loaders, events, stats)
    events.add_sink(claim.child_event)
    assert claim.announce().level == 13
    loaders.servable = EIGHT - {"RestoreFormer"}  # a replacement process whose spandrel lacks an architecture
    events.emit("child_started", child="inference-0#2", pid=2, backend="hordelib")
    lowered = await events.wait_for(lambda e: e.kind == "bridge_level" and e.fields["level"] == 9, TIMEOUT)
    assert "RestoreFormer" in lowered.fields["reason"] and stats.kudos_factor == 0.9


def test_the_fake_backend_keeps_its_level_whatever_happens() -> None:
    events = EventLog()
    claim = BridgeClaim(FAKE_CAPABILITIES, True, events, files=None, servable=lambda: EIGHT)
    assert claim.announce().level == 1
    assert claim.refresh().level == 1
    assert _levels(events) == [(1, None)]


def test_child_events_do_not_touch_a_claim_without_post_processor_files() -> None:
    claim = BridgeClaim(FAKE_CAPABILITIES, True, EventLog())
    claim.announce()
    # Outside an event loop: a refresh scheduled for the loop's next turn would raise here.
    claim.child_event(Event("child_started", 0.0, fields={"child": "inference-0#1"}))
    assert claim.current.level == 1


def test_the_start_up_and_change_lines_say_the_level_why_and_the_kudos() -> None:
    reason = "level 13 once 2 level-13 post-processors are on disk and verified (a, b, 431 MB to download)"
    waiting = BridgeLevel(9, reason, 0.9, waiting=True)
    assert claim_line(waiting) == (
        "Bridge level 9 (AI Horde Worker reGen:9:https://github.com/Haidra-Org/horde-worker-reGen): level 13 once "
        "2 level-13 post-processors are on disk and verified (a, b, 431 MB to download); the horde pays 0.90x kudos "
        "meanwhile"
    )
    full = BridgeLevel(13, "all 8 level-13 post-processors are on disk and load here", 1.0)
    assert claim_line(full, previous=9).startswith("Bridge level 9 -> 13 (AI Horde Worker reGen:13:")
    assert claim_line(full, previous=9).endswith("; the horde pays 1.00x kudos")
