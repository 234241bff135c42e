"""Pure policies of the alchemist: which forms it may name in a pop, how many it takes, when each may start.

Alchemy fills the capacity image jobs leave idle and never delays them past their deadline:

- post-processor forms run on an idle inference slot, and are asked for and started only while a slot
  is idle, no image job waits for one and no image job is coming: the image popper's latest pop came
  back empty (or it cannot pop). While image jobs keep coming, a slot that frees is theirs even in the
  moment before the next one arrives (a form ahead of an image job holds its slot for seconds);
- analysis forms (caption, interrogation, nsfw) share the safety child with the image checks, which go
  first: a form is sent only while no image check is waiting, so a check waits behind at most the
  forms already there (`alchemy_max_concurrency`, one by default);
- with `alchemy_allow_concurrent: false`, alchemy is asked for only while no image job is held at all;
- a form that cannot be done and reported before its deadline is reported faulted at once (the horde
  re-queues it for another alchemist) instead of being left for the horde to abort;
- the fault breaker (`scheduling.breaker`) counts every faulted form, by form and for alchemy as a
  whole: a form that keeps failing stops being offered, and alchemy stops being popped before its
  faults could come near the horde's 20 an hour.

Only names this worker can serve now are ever sent (`served_forms`): one unknown name makes the
horde refuse the whole pop. No I/O, no clocks: callers pass `now` and what they measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from horde_worker_regen.jobs.alchemy import ANALYSIS_FORMS, FormLane, lane_of
from horde_worker_regen.models.post_processor_files import BACKGROUND_REMOVAL, MANAGED_POST_PROCESSORS
from horde_worker_regen.scheduling.breaker import Cause, CauseKind, FaultBreaker, Subject, Withdrawal
from horde_worker_regen.shared.post_processors import KNOWN_POST_PROCESSORS

# The analysis forms each safety backend answers (its core's `run_form`): both hold CLIP and the NSFW check.
ANALYSIS_FORMS_OF_SAFETY_BACKEND: Mapping[str, frozenset[str]] = {
    "horde_safety": frozenset(ANALYSIS_FORMS),
    "fake": frozenset(ANALYSIS_FORMS),
}
# The subject under which every faulted form is counted as well: alchemy as a whole.
ALL_FORMS = Subject("alchemy", feature=True)
# A form must be done this long before its deadline, leaving the time to upload and submit it.
REPORT_RESERVE_S = 30.0


@dataclass(frozen=True)
class FormSupply:
    """What this worker can run now, beside what the configuration names."""

    analysis: frozenset[str]  # the analysis forms the safety backend answers
    caption_enabled: bool  # alchemy_caption_enabled: BLIP costs memory, so caption is opt-in
    post_processing: bool  # hordelib's post-processors and strip_background can run (their references exist)
    managed: frozenset[str]  # the post-processors with files of the worker's own (level 13, strip_background) ready
    caption_model: str | None = None  # why caption's model is not on disk yet (None: it is, or none is needed)


# Why a configured form is not served, in the operator's words (the dashboard and check-config show them).
NO_ANALYSIS = "the safety backend does not answer it"
CAPTION_OFF = "needs alchemy_caption_enabled: true (BLIP is loaded in the safety process on the first caption)"
NOT_A_FORM = "not a form this worker knows"
NO_POST_PROCESSING = (
    "post-processors need allow_post_processing: true and hordelib's post-processor references "
    "(esrgan.json, gfpgan.json, codeformer.json beside the model reference)"
)
LEVEL_13_NOT_READY = (
    "a level-13 post-processor: offered once its files are on disk and verified and every inference process can load it"
)
BACKGROUND_REMOVAL_NOT_READY = (
    "strip_background: offered once rembg's model u2net.onnx is on disk and verified and every inference process "
    "can run rembg"
)


def unserved_reason(form: str, supply: FormSupply) -> str | None:
    """Why this worker cannot run `form` now; None when it can."""
    if form in ANALYSIS_FORMS:
        if form not in supply.analysis:
            return NO_ANALYSIS
        if form != "caption":
            return None
        return CAPTION_OFF if not supply.caption_enabled else supply.caption_model
    if form not in KNOWN_POST_PROCESSORS:
        return NOT_A_FORM
    if not supply.post_processing:
        return NO_POST_PROCESSING
    return _files_not_ready(form, supply)


def _files_not_ready(form: str, supply: FormSupply) -> str | None:
    """Why post-processor `form` cannot run for want of the files the worker manages (None: it can)."""
    if form not in MANAGED_POST_PROCESSORS or form in supply.managed:
        return None
    return BACKGROUND_REMOVAL_NOT_READY if form == BACKGROUND_REMOVAL else LEVEL_13_NOT_READY


def servable(form: str, supply: FormSupply) -> bool:
    """Whether this worker can run `form` now."""
    return unserved_reason(form, supply) is None


def served_forms(configured: Sequence[str], supply: FormSupply) -> tuple[str, ...]:
    """The configured forms (horde names) this worker can serve now, in the configured order."""
    return tuple(form for form in configured if servable(form, supply))


@dataclass(frozen=True)
class AlchemyCapacity:
    """What the pop decision looks at: the image side's load and the forms already held."""

    accepting: bool
    max_concurrency: int  # alchemy_max_concurrency: forms held at once, per lane
    allow_concurrent: bool  # alchemy_allow_concurrent
    images_held: int  # image jobs in flight
    images_waiting: int  # image jobs popped but not yet on a slot
    idle_slots: int
    analysis_held: int  # analysis forms popped whose child has not answered yet
    post_processing_held: int  # the same, post-processors
    post_processing_waiting: int  # post-processors not yet on a slot
    images_coming: bool = False  # image jobs keep coming: the image popper's latest pop brought one


@dataclass(frozen=True)
class FormRoom:
    """How many more forms of each lane may be taken now."""

    analysis: int
    post_processing: int

    def of(self, lane: FormLane) -> int:
        """The room of one lane."""
        return self.analysis if lane == "analysis" else self.post_processing


def form_room(capacity: AlchemyCapacity) -> FormRoom:
    """Room for analysis forms (up to the concurrency) and post-processors (idle slots no image job waits for)."""
    if not capacity.accepting or (not capacity.allow_concurrent and capacity.images_held > 0):
        return FormRoom(0, 0)
    analysis = max(0, capacity.max_concurrency - capacity.analysis_held)
    post_processing = 0
    if may_take_slot(capacity.images_waiting, capacity.images_coming):
        free_slots = capacity.idle_slots - capacity.post_processing_waiting
        post_processing = max(0, min(capacity.max_concurrency - capacity.post_processing_held, free_slots))
    return FormRoom(analysis, post_processing)


@dataclass(frozen=True)
class PopPlan:
    """The forms to name in the next pop and how many to take (nothing to ask for: `forms` empty)."""

    forms: tuple[str, ...]
    amount: int
    complete: bool = True  # it names every form offerable now (no lane left out for want of room)


def pop_plan(offerable: Sequence[str], room: FormRoom) -> PopPlan:
    """Name the offerable forms of every lane with room; take no more than the smallest room among them,
    so that whichever forms the horde hands out, none waits for a place."""
    forms = tuple(form for form in offerable if room.of(lane_of(form)) > 0)
    complete = len(forms) == len(offerable)
    if not forms:
        return PopPlan((), 0, complete)
    return PopPlan(forms, min(room.of(lane_of(form)) for form in forms), complete)


def may_send_analysis(image_checks_pending: int, analysis_running: int, max_concurrency: int) -> bool:
    """Whether an analysis form may go to the safety child now: image checks first, a few forms at a time."""
    return image_checks_pending == 0 and analysis_running < max_concurrency


def may_take_slot(images_waiting: int, images_coming: bool = False) -> bool:
    """Whether a post-processor form may take an idle inference slot: never ahead of an image job, nor
    while image jobs keep coming (`images_coming`: the image popper's latest pop brought one)."""
    return images_waiting == 0 and not images_coming


class FormStart(Enum):
    """What to do with a form whose child is free."""

    RUN = "run"
    FAULT = "fault"  # it cannot be done and reported in time: report it faulted now
    DROP = "drop"  # its deadline has passed: the horde takes it back by itself


def form_start(now: float, deadline: float, expected_seconds: float) -> FormStart:
    """Run a form only if it can be done with `REPORT_RESERVE_S` left to report it before its deadline."""
    if now >= deadline:
        return FormStart.DROP
    if now + expected_seconds > deadline - REPORT_RESERVE_S:
        return FormStart.FAULT
    return FormStart.RUN


def form_subject(form: str) -> Subject:
    """The breaker's subject for one form."""
    return Subject(form, feature=True)


def form_causes(form: str, kind: CauseKind) -> tuple[Cause, Cause]:
    """The causes a faulted form is counted under: the form itself (as `kind`), and alchemy as a whole."""
    return Cause(kind, form_subject(form)), Cause("transient", ALL_FORMS)


def form_gate(breaker: FaultBreaker, forms: Sequence[str], held: Mapping[str, int], now: float) -> tuple[str, ...]:
    """The forms the breaker lets the next pop name, with `held` forms of each name in flight; none once
    alchemy as a whole has faulted as much as the rolling hour allows."""
    if not breaker.offerable(ALL_FORMS, sum(held.values()), now):
        return ()
    return tuple(form for form in forms if breaker.offerable(form_subject(form), held.get(form, 0), now))


@dataclass(frozen=True)
class FormAvailability:
    """One configured form: whether the next pop may name it, and if not, why."""

    form: str
    reason: str | None  # None: offered

    @property
    def offered(self) -> bool:
        """Whether the next pop with room for it names it."""
        return self.reason is None


def _withdrawn_reason(withdrawal: Withdrawal) -> str:
    if withdrawal.cause.subject == ALL_FORMS:
        return f"alchemy paused: {withdrawal.faults} forms faulted within the hour (last: {withdrawal.reason})"
    how = "within the hour" if withdrawal.by_cap else "in a row"
    return f"withdrawn: {withdrawal.faults} of its forms faulted {how} (last: {withdrawal.reason})"


def form_availability(
    configured: Sequence[str], supply: FormSupply, withdrawn: Mapping[Subject, Withdrawal]
) -> tuple[FormAvailability, ...]:
    """Each configured form, offered or why not: what this worker cannot run, then what the breaker withdrew
    (alchemy as a whole, or the form itself)."""
    every = withdrawn.get(ALL_FORMS)
    found = []
    for form in configured:
        reason = unserved_reason(form, supply)
        withdrawal = every or withdrawn.get(form_subject(form))
        if reason is None and withdrawal is not None:
            reason = _withdrawn_reason(withdrawal)
        found.append(FormAvailability(form, reason))
    return tuple(found)
