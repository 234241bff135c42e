"""The job state machine: start, submit (compare-and-set), abort, re-queue, sweep, expiry.

request (n, jobs, expiry, faulted after >2 faulted jobs) → processing generation (start_time, ttl,
generation, faulted). Return values of `set_generation` follow the server: the reward, 0 for an
already completed job, -1 for a faulted or aborted one.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from horde_worker_regen.localhorde.capabilities import bridge_kudos_multiplier
from horde_worker_regen.localhorde.entities import ProcessingGeneration, User, WaitingPrompt, Worker
from horde_worker_regen.localhorde.kudos import baseline_multiplier, credit_split, job_reward
from horde_worker_regen.localhorde.reference import ModelReference
from horde_worker_regen.localhorde.state import HordeState

REQUEST_EXPIRY_S = 20 * 60
EXTRA_SLOW_REQUEST_EXPIRY_S = 60 * 60
ABORT_WINDOW_S = 3600
DROPPED_JOB_THRESHOLD = 20
MAX_FAULTED_JOBS = 2
SUSPICION_PAUSE_THRESHOLD = 5
UNREASONABLY_FAST_MPS = 20.0
SEED_LIMIT = 2**32

TOO_MANY_ABORTS_MESSAGE = (
    "Maintenance mode activated because worker is dropping too many jobs."
    "Please investigate if your performance has been impacted and consider reducing your max_power or your max_threads"
)
OWNER_MAINTENANCE_MESSAGE = "This worker has been put into maintenance mode by its owner"


def seed_to_int(seed: str | int | None) -> int:
    """The server's seed coercion: digits as a number, text as its bytes, random if empty."""
    if isinstance(seed, int):
        number = abs(seed)
    elif seed is None or seed == "":
        return secrets.randbelow(SEED_LIMIT)
    else:
        number = abs(int(seed) if seed.isdigit() else int.from_bytes(seed.encode(), "little"))
    while number >= SEED_LIMIT:
        number >>= 32
    return number


def set_maintenance(worker: Worker, enabled: bool, message: str | None = None) -> None:
    """Toggle maintenance; enabling without a message uses the owner's default text."""
    worker.maintenance = enabled
    worker.maintenance_msg = (message or OWNER_MAINTENANCE_MESSAGE) if enabled else ""
    logger.info(f"local horde: worker '{worker.name}' maintenance={enabled}")


def report_suspicion(worker: Worker, owner: User | None, reason: str) -> None:
    """Untrusted owners accrue suspicion; at 5 the worker is paused (fake jobs, nothing credited)."""
    if owner is None or owner.trusted:
        return
    worker.suspicion += 1
    logger.info(f"local horde: worker '{worker.name}' suspicion {worker.suspicion} ({reason})")
    if worker.suspicion >= SUSPICION_PAUSE_THRESHOLD:
        worker.paused = True


def log_aborted_job(worker: Worker, owner: User | None, now: float, *, suspicion: bool = True) -> None:
    """Count an abort in the hourly window; more than 20 puts the worker into maintenance."""
    if now - worker.abort_window_start > ABORT_WINDOW_S:
        worker.aborted_jobs = 0
        worker.abort_window_start = now
    worker.aborted_jobs += 1
    if worker.aborted_jobs > DROPPED_JOB_THRESHOLD:
        set_maintenance(worker, True, TOO_MANY_ABORTS_MESSAGE)
        if suspicion:
            report_suspicion(worker, owner, "TOO_MANY_JOBS_ABORTED")
        worker.aborted_jobs = 0
    worker.uncompleted_jobs += 1


def next_seed(wp: WaitingPrompt) -> int:
    """The seed of the next batch: random per pop unless the client fixed one."""
    if wp.seed is None:
        return seed_to_int(None)
    seed = wp.seed
    started = wp.jobs - wp.n
    if wp.seed_variation and started > 0:
        seed += wp.seed_variation * started
    while seed >= SEED_LIMIT:
        seed >>= 32
    return seed


def start_generations(
    state: HordeState, wp: WaitingPrompt, worker: Worker, *, model: str, count: int, ttl: int, fake: bool
) -> list[ProcessingGeneration]:
    """Hand `count` images of a request to a worker; refreshes the request's expiry."""
    now = state.clock.now()
    seed = next_seed(wp)
    jobs = [
        ProcessingGeneration(
            id=str(uuid.uuid4()),
            wp_id=wp.id,
            worker_id=worker.id,
            model=model,
            start_time=now,
            ttl=ttl,
            seed=seed,
            fake=fake,
        )
        for _ in range(count)
    ]
    for job in jobs:
        state.add_generation(job)
    if not fake:
        wp.n -= count
    wp.expiry = now + (EXTRA_SLOW_REQUEST_EXPIRY_S if worker.extra_slow_worker else REQUEST_EXPIRY_S)
    return jobs


def requeue(state: HordeState, wp: WaitingPrompt, pg: ProcessingGeneration) -> None:
    """Give one image back to the queue if the request still needs it (fake jobs never took one)."""
    if pg.fake:
        return
    finished = sum(1 for pg in state.generations_of(wp) if pg.is_completed and not pg.faulted)
    if finished < wp.jobs:
        wp.n += 1


def abort_generation(state: HordeState, pg: ProcessingGeneration) -> bool:
    """Fault an in-progress job and count it against its worker; False if it had already ended."""
    if pg.is_completed or pg.faulted:
        return False
    pg.faulted = True
    worker = state.workers.get(pg.worker_id)
    if worker is not None:
        owner = state.users.get(worker.owner_id)
        log_aborted_job(worker, owner, state.clock.now(), suspicion=state.detect_suspicion)
    wp = state.requests.get(pg.wp_id)
    if wp is not None:
        wp.faulted_jobs += 1
        if wp.faulted_jobs > MAX_FAULTED_JOBS:
            wp.faulted = True
            logger.warning(f"local horde: request {wp.id} faulted after {wp.faulted_jobs} faulted jobs")
    return True


@dataclass
class Submission:
    """What a worker sent for one job."""

    generation: str
    seed: int
    state: str = "ok"
    gen_metadata: list[dict[str, Any]] = field(default_factory=list)


def set_generation(
    state: HordeState, reference: ModelReference, pg: ProcessingGeneration, submission: Submission
) -> float:
    """Store a result with compare-and-set semantics; reward, 0 if completed, -1 if faulted.

    A `faulted` submission re-queues the image *before* the check, unconditionally: submitting
    `faulted` twice for one id re-queues it twice, as on the server.
    """
    wp = state.requests[pg.wp_id]
    if submission.state == "faulted":
        requeue(state, wp, pg)
        abort_generation(state, pg)
    elif submission.state in ("censored", "csam"):
        pg.censored = True
    if pg.is_completed:
        return 0
    if pg.faulted:
        return -1
    now = state.clock.now()
    pg.generation = submission.generation
    pg.seed = submission.seed
    pg.gen_metadata = submission.gen_metadata
    pg.submit_time = now
    if any(entry.get("type") == "censorship" for entry in submission.gen_metadata):
        pg.censored = True
    multiplier = baseline_multiplier(
        reference.baseline(pg.model),
        qr_code=wp.params.get("workflow") == "qr_code",
        hires_fix=bool(wp.params.get("hires_fix")),
    )
    pg.reward = job_reward(wp.kudos, multiplier)
    _record(state, pg, wp, now)
    return pg.reward


def _record(state: HordeState, pg: ProcessingGeneration, wp: WaitingPrompt, now: float) -> None:
    """Credit the worker's owner, charge the requester, update speed and statistics."""
    worker = state.workers[pg.worker_id]
    owner = state.users.get(worker.owner_id)
    elapsed = max(now - pg.start_time, 1e-3)
    worker.performances.append(wp.things / elapsed)
    worker.fulfilments += 1
    worker.megapixelsteps_generated += wp.things / 1e6
    if state.detect_suspicion and wp.things / elapsed / 1e6 > UNREASONABLY_FAST_MPS:
        report_suspicion(worker, owner, "UNREASONABLY_FAST")
    if pg.fake or owner is None:
        logger.info(f"local horde: fake generation {pg.id} by '{worker.name}' credits nothing")
        return
    credit = credit_split(pg.reward, bridge_kudos_multiplier(worker.bridge_agent), trusted=owner.trusted)
    owner.kudos += credit.spendable
    owner.evaluating_kudos += credit.escrow
    owner.megapixelsteps_generated += wp.things / 1e6
    owner.images_generated += 1
    worker.kudos_generated += credit.spendable + credit.escrow
    requester = state.users.get(wp.user_id)
    charge = 0.0 if pg.censored else pg.reward
    if requester is not None:
        requester.kudos -= charge
    wp.consumed_kudos += charge
    state.model_stats.record(pg.model, now)
    logger.info(f"local horde: generation {pg.id} by '{worker.name}' rewarded {pg.reward}")


@dataclass
class SweepReport:
    """What one sweep did: image jobs aborted, image requests expired, and the same for alchemy."""

    aborted: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    aborted_forms: list[str] = field(default_factory=list)
    expired_interrogations: list[str] = field(default_factory=list)


def sweep(state: HordeState) -> SweepReport:
    """`check_waiting_prompts`: abort jobs past their ttl (re-queue), delete expired requests."""
    now = state.clock.now()
    report = SweepReport()
    for pg in list(state.generations.values()):
        if pg.is_stale(now) and abort_generation(state, pg):
            wp = state.requests.get(pg.wp_id)
            if wp is not None:
                requeue(state, wp, pg)
            report.aborted.append(pg.id)
    for wp in [wp for wp in state.requests.values() if wp.expiry <= now]:
        state.delete_request(wp)
        report.expired.append(wp.id)
    if report.aborted or report.expired:
        logger.info(f"local horde sweep: {len(report.aborted)} aborted, {len(report.expired)} expired")
    return report
