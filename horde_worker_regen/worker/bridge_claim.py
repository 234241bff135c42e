"""The capability level the running worker claims, kept in step with what it can serve.

`BridgeClaim` asks the pure policy (`bridge_level.decide_bridge_level`) again whenever something it
depends on changes: a level-13 post-processor's files land (or fail), or an inference process comes
up and says which post-processors its loaders handle. It logs one INFO line when the level is first
decided (which level, why, what it costs in kudos) and one each time it changes, emits a
`bridge_level` event both times, and hands each new level to its followers: the popper (the agent its
next pop reports) and the statistics (the kudos factor of later rewards).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from typing import Protocol

from loguru import logger

from horde_worker_regen.inference.backend import BackendCapabilities
from horde_worker_regen.inference.capabilities import POST_PROCESSOR_LEVEL
from horde_worker_regen.jobs.events import Event, EventLog
from horde_worker_regen.worker.bridge_level import LEVEL_13_NAMES, BridgeLevel, LevelInputs, decide_bridge_level

# Child events after which the inference processes' loaders may say something new.
CHILD_EVENTS = frozenset({"child_started", "child_lost", "child_recycled"})


class PostProcessorFiles(Protocol):
    """What the claim (and the alchemist) read of the managed post-processors' files, the level-13 ones and
    strip_background's (`models.post_processor_store`)."""

    @property
    def wanted(self) -> Collection[str]:
        """The managed names the configuration selects."""
        ...

    @property
    def ready(self) -> frozenset[str]:
        """The names whose every file is on disk and verified."""
        ...

    @property
    def failures(self) -> Mapping[str, str]:
        """The names whose files could not be put on disk, and why."""
        ...

    def bytes_to_download_of(self, names: Collection[str]) -> int:
        """What the files of `names` still missing weigh."""
        ...


class BridgeClaim:
    """The level claimed now, its followers, and the recomputation when its inputs change."""

    def __init__(
        self,
        backend: BackendCapabilities,
        allow_post_processing: bool,
        events: EventLog,
        *,
        files: PostProcessorFiles | None = None,
        servable: Callable[[], frozenset[str] | None] = lambda: None,
    ) -> None:
        self._backend = backend
        self._allow_post_processing = allow_post_processing
        self._events = events
        self._files = files  # None: the backend manages no post-processor files (the fake one)
        self._servable = servable  # the names every ready inference process loads; None until one is ready
        self._followers: list[Callable[[BridgeLevel], None]] = []
        self._announced = False
        self.current = decide_bridge_level(self._inputs())

    def _inputs(self) -> LevelInputs:
        backend, files = self._backend, self._files
        if backend.version < POST_PROCESSOR_LEVEL or files is None:
            return LevelInputs(backend.name, backend.version, self._allow_post_processing)
        return LevelInputs(
            backend.name,
            backend.version,
            self._allow_post_processing,
            wanted=frozenset(files.wanted),
            ready=frozenset(files.ready),
            servable=self._servable(),
            failures=dict(files.failures),
            bytes_to_download=files.bytes_to_download_of(LEVEL_13_NAMES),
        )

    def follow(self, follower: Callable[[BridgeLevel], None]) -> None:
        """Hand the level to `follower` now and each time it changes."""
        self._followers.append(follower)
        follower(self.current)

    def announce(self) -> BridgeLevel:
        """Decide the level with what is known now and say so: the start-up line and the first event."""
        self._announced = True
        self.current = decide_bridge_level(self._inputs())
        self._say(self.current, previous=None)
        self._hand_on(self.current)
        return self.current

    def refresh(self) -> BridgeLevel:
        """Decide again. A new level is logged and emitted (once announced); the followers get every change,
        a new reason alone included (the dashboard shows it)."""
        previous, self.current = self.current, decide_bridge_level(self._inputs())
        if self.current != previous:
            if self._announced and self.current.level != previous.level:
                self._say(self.current, previous.level)
            self._hand_on(self.current)
        return self.current

    def _say(self, level: BridgeLevel, previous: int | None) -> None:
        logger.info(claim_line(level, previous))
        self._events.emit(
            "bridge_level",
            level=level.level,
            previous=previous,
            agent=level.agent,
            kudos_factor=level.kudos_factor,
            reason=level.reason,
        )

    def _hand_on(self, level: BridgeLevel) -> None:
        for follower in self._followers:
            follower(level)

    def files_changed(self, ready: frozenset[str]) -> None:
        """A post-processor's files landed (`PostProcessorDownloads.run`'s `on_change`)."""
        del ready  # read again with the failures and the bytes left, from the files themselves
        self.refresh()

    def child_event(self, event: Event) -> None:
        """An `EventLog` sink: after an inference process came up or went, its loaders may say something new.

        The refresh runs on the loop's next turn, once the slot has recorded how its child came up."""
        if event.kind in CHILD_EVENTS and self._files is not None:
            asyncio.get_running_loop().call_soon(self.refresh)


def claim_line(level: BridgeLevel, previous: int | None = None) -> str:
    """The INFO line of a level decided (`previous` None) or changed: which level, why, and the kudos it earns."""
    change = f"{previous} -> {level.level}" if previous is not None else str(level.level)
    meanwhile = " meanwhile" if level.waiting else ""
    return (
        f"Bridge level {change} ({level.agent}): {level.reason}; "
        f"the horde pays {level.kudos_factor:.2f}x kudos{meanwhile}"
    )
