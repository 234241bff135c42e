"""Where every id the horde handed out ended, read from the horde's own records.

The horde's pops and submits are recorded as it serves them (an innermost middleware, after any
fault has been applied), and the jobs' state comes from the horde's state. An id ends `ok` (a
result was stored and not faulted), `faulted` (the horde accepted a `faulted` submit for it), or
`dropped` with a reason: the worker logged why it gave the id up, or the pop response that carried
it was lost in transit (the horde re-queues such an id at its ttl). Any other id is `lost`.

Apart from how it ended, an id may have been reported twice: from the submits the horde received
for it (refused ones included), any submit after the first one the horde applied is a double report,
unless the answer to an earlier submit of that id was lost to a `drop` fault (the worker then rightly
retries and is answered `DuplicateGen`): each lost answer excuses one retry. An id whose result the
horde stored and that was also reported `faulted` is a double report whatever the faults were (a
`faulted` submit re-queues the image even when it is done).
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import SubmitAttempt
from horde_worker_regen.localhorde.errors import HordeError

POP_PATH = "/generate/pop"
SUBMIT_PATH = "/generate/submit"
LOST_POP_REASON = "the pop response was lost in transit (the horde re-queues it at its ttl)"
# "Job <key> (<n> image(s)) dropped: <reason>" (a whole job) and "Job <id> dropped: <reason>" (one id).
_JOB_DROPPED = re.compile(r"Job (?P<key>[0-9a-f-]{36}) \(\d+ image\(s\)\) dropped: (?P<reason>.*)$")
_ID_DROPPED = re.compile(r"Job (?P<key>[0-9a-f-]{36}) dropped: (?P<reason>.*)$")
_SPOOLED_DROPPED = re.compile(r"Spooled result (?P<key>[0-9a-f-]{36}) dropped: (?P<reason>.*)$")
_ID_REFUSED = re.compile(r"Job (?P<key>[0-9a-f-]{36}): (?P<reason>the horde refused the submit.*)$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HordeLedger:
    """Every batch the horde handed out and every submit it answered 200, in order."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, ...]] = []
        self.submits: list[tuple[str, str]] = []
        self.pop_errors: collections.Counter[str] = collections.Counter()  # rc -> pops refused with it

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record pops that handed out ids, pops refused (by rc), and submits that were accepted."""
        try:
            response = await handler(request)
        except HordeError as error:
            if request.path.endswith(POP_PATH):
                self.pop_errors[error.rc] += 1
            raise
        if request.method == "POST" and response.status == 200 and isinstance(response, web.Response):
            if request.path.endswith(POP_PATH):
                ids = tuple(_json(response.body).get("ids") or ())
                if ids:
                    self.batches.append(ids)
            elif request.path.endswith(SUBMIT_PATH):
                body = _json(await request.read())
                self.submits.append((str(body.get("id")), str(body.get("state", "ok"))))
        return response

    def faulted_ids(self) -> set[str]:
        """Ids the worker reported as faulted (and the horde accepted)."""
        return {job_id for job_id, state in self.submits if state == "faulted"}

    def submit_counts(self) -> collections.Counter[str]:
        """Accepted submits per id."""
        return collections.Counter(job_id for job_id, _ in self.submits)


def _json(body: Any) -> dict[str, Any]:
    try:
        value = json.loads(body) if isinstance(body, bytes | str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def lost_pop_ids(horde: LocalHorde) -> set[str]:
    """Ids of pop responses a `drop` fault withheld from the worker."""
    return {job_id for lost in horde.faults.lost_responses if lost.endpoint == "pop"
            for job_id in _json(lost.body).get("ids") or ()}  # fmt: skip


def lost_submit_answers(horde: LocalHorde) -> collections.Counter[str]:
    """id → how many answers to its submits a `drop` fault withheld from the worker."""
    return collections.Counter(str(_json(lost.request).get("id")) for lost in horde.faults.lost_responses
                               if lost.endpoint == "submit")  # fmt: skip


def double_report(attempts: list[SubmitAttempt], lost_answers: int) -> str | None:
    """Why these submits of one id report it more than once, or None."""
    stored = any(attempt.applied and attempt.state != "faulted" for attempt in attempts)
    if stored and any(attempt.state == "faulted" for attempt in attempts):
        return f"submitted ok and reported faulted ({', '.join(attempt.state for attempt in attempts)})"
    first = next((index for index, attempt in enumerate(attempts) if attempt.applied), None)
    later = 0 if first is None else len(attempts) - first - 1
    if later > lost_answers:
        return f"submitted {later} more time(s) after it was applied, {lost_answers} lost answer(s) to excuse it"
    return None


def double_reports(horde: LocalHorde) -> dict[str, str]:
    """id → why it counts as reported more than once, from every submit the horde received."""
    lost = lost_submit_answers(horde)
    attempts_by_id = horde.state.submit_attempts
    reasons = {job_id: double_report(attempts, lost[job_id]) for job_id, attempts in attempts_by_id.items()}
    return {job_id: reason for job_id, reason in reasons.items() if reason is not None}


def drop_reasons(lines: Iterable[str], batches: list[tuple[str, ...]]) -> dict[str, str]:
    """id → the reason the worker logged for dropping it (a job's drop covers every id of its batch)."""
    batch_of = {batch[0]: batch for batch in batches}
    reasons: dict[str, str] = {}
    for line in lines:
        if match := _JOB_DROPPED.search(line):
            for job_id in batch_of.get(match["key"], (match["key"],)):
                reasons.setdefault(job_id, match["reason"])
        elif match := _ID_DROPPED.search(line) or _SPOOLED_DROPPED.search(line) or _ID_REFUSED.search(line):
            reasons.setdefault(match["key"], match["reason"])
    return reasons


@dataclass
class Accounting:
    """The end of every id handed out."""

    popped_jobs: int = 0
    ok: list[str] = field(default_factory=list)
    faulted: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    submits: collections.Counter[str] = field(default_factory=collections.Counter)
    double_reports: dict[str, str] = field(default_factory=dict)  # id -> why it was reported more than once

    @property
    def popped_ids(self) -> int:
        """Every id handed out."""
        return len(self.ok) + len(self.faulted) + len(self.dropped) + len(self.lost)

    def drop_summary(self) -> dict[str, int]:
        """How many ids were dropped for each reason."""
        return dict(collections.Counter(_short_reason(reason) for reason in self.dropped.values()))


def _short_reason(reason: str) -> str:
    """A reason without ids and URLs, so equal causes group together."""
    reason = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", reason)
    reason = re.sub(r"https?://\S+", "<url>", reason)
    return reason[:110]


def account(horde: LocalHorde, ledger: HordeLedger, worker_lines: Iterable[str]) -> Accounting:
    """Sort every id the horde handed out into ok / faulted / dropped (with its reason) / lost."""
    reasons = drop_reasons(worker_lines, ledger.batches)
    lost_in_transit = lost_pop_ids(horde)
    faulted_submits = ledger.faulted_ids()
    result = Accounting(popped_jobs=len(ledger.batches), submits=ledger.submit_counts(),
                        double_reports=double_reports(horde))  # fmt: skip
    for batch in ledger.batches:
        for job_id in batch:
            pg = horde.state.generations.get(job_id)
            if pg is not None and pg.is_completed and not pg.faulted:
                result.ok.append(job_id)
            elif pg is not None and pg.faulted and job_id in faulted_submits:
                result.faulted.append(job_id)
            elif job_id in reasons:
                result.dropped[job_id] = reasons[job_id]
            elif job_id in lost_in_transit:
                result.dropped[job_id] = LOST_POP_REASON
            else:
                result.lost.append(job_id)
    return result
