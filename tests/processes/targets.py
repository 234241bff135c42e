"""Child-process targets for the supervisor tests: do-nothing children that misbehave on request.

They live in an importable module because `spawn` children import their target by name.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from pathlib import Path

from horde_worker_regen.jobs.spec import Generated
from horde_worker_regen.processes.child_runtime import (
    ChildLink,
    ChildLogging,
    Work,
    prepare_child_process,
    report_startup_failure,
    serve,
)
from horde_worker_regen.processes.messages import (
    CheckImages,
    ChildMessage,
    ChildReady,
    JobDone,
    JobProgress,
    RunJob,
    SafetyChecked,
)


def _echo(link: ChildLink, work: Work) -> ChildMessage:
    if not isinstance(work, RunJob):
        assert isinstance(work, CheckImages), "the echo child is never asked to preload"
        return SafetyChecked(link.incarnation, work.job_key, ())
    prompt = work.spec.prompt
    if prompt == "exit":
        os._exit(5)
    incarnation = link.incarnation - 1 if prompt == "impostor" else link.incarnation
    return JobDone(incarnation, work.spec.job_key, Generated((prompt.encode(),), time.monotonic(), time.monotonic()))


def echo_main(connection: Connection, incarnation: int, logs_dir: Path) -> None:
    """Answers each job with its prompt as the only image; 'exit' kills it, 'impostor' answers as another."""
    prepare_child_process(ChildLogging(logs_dir, 0, 9))
    link = ChildLink(connection, incarnation)
    serve(link, "echo", lambda work: _echo(link, work))


def failing_main(connection: Connection, incarnation: int, logs_dir: Path) -> None:
    """Cannot build its backend."""
    prepare_child_process(ChildLogging(logs_dir, 0, 9))
    report_startup_failure(ChildLink(connection, incarnation), RuntimeError("no GPU here"))


def deaf_main(connection: Connection, incarnation: int, logs_dir: Path) -> None:
    """Says it is ready, then never reads its pipe again (no pongs): a wedged child."""
    connection.send(ChildReady(incarnation, os.getpid(), "deaf"))
    time.sleep(600)  # the fault itself: alive, and deaf


def never_ready_main(connection: Connection, incarnation: int, logs_dir: Path) -> None:
    """Still starting, for as long as it lives (as a child importing a large library): never says ready,
    only, once, that it is under way (so that a test knows the child is up without polling)."""
    connection.send(JobProgress(incarnation, "start-up", 0, 1))
    time.sleep(600)  # the fault itself: a start-up that never ends
