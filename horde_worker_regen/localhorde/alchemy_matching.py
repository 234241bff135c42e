"""Which forms a popping alchemist is offered, in which order, and why others were skipped.

`get_sorted_forms_filtered_to_worker` (horde/database/functions.py) first filters in SQL: the form
is WAITING and named in this pop's `forms` (an empty list matches nothing), the image fits the
alchemist's stored `max_tiles`, an alchemist in maintenance only sees its owner's requests, and one
slower than 10 s a form only requests that allow slow workers. Those are not counted as skipped.
Then `InterrogationWorker.can_interrogate` refuses per form, counted under `untrusted` or `kudos`.
There is no bridge-capability check for alchemy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from horde_worker_regen.localhorde.alchemy_entities import AlchemistWorker, FormState, Interrogation, InterrogationForm
from horde_worker_regen.localhorde.entities import User

SLOW_ALCHEMIST_SECONDS = 10.0
CANDIDATE_LIMIT = 100
# The pop answer's `skipped` model (`NoValidInterrogationsFound`) has only these keys; the server also
# counts `kudos`, but marshalling drops it.
VISIBLE_SKIP_REASONS = ("worker_id", "untrusted", "bridge_version")

Candidate = tuple[InterrogationForm, Interrogation]


@dataclass(frozen=True)
class AlchemyPopContext:
    """What matching reads: the alchemist's stored check-in, this pop's forms and the accounts."""

    worker: AlchemistWorker
    owner: User
    forms: frozenset[str]
    requesters: dict[int, User]
    priority_aliases: frozenset[str] = frozenset()  # the server never fills this for alchemists


def passes_filters(ctx: AlchemyPopContext, form: InterrogationForm, interrogation: Interrogation) -> bool:
    """The SQL filters; a form that fails one is not offered and not counted."""
    worker = ctx.worker
    return (
        form.state is FormState.WAITING
        and form.name in ctx.forms
        and interrogation.image_tiles <= worker.max_tiles
        and (interrogation.safe_ip or worker.allow_unsafe_ipaddr)
        and (not worker.maintenance or interrogation.user_id == worker.owner_id)
        and (worker.speed < SLOW_ALCHEMIST_SECONDS or interrogation.slow_workers)
    )


def refusal(ctx: AlchemyPopContext, form: InterrogationForm, interrogation: Interrogation) -> str | None:
    """`can_interrogate`: the skip reason for one form, or None when this alchemist may take it.

    Untrusted owners get no request that wants trusted workers, nor one from an unsafe address by an
    untrusted requester. With `require_upfront_kudos` (which the interrogation pop never sets, so it
    stays off), an untrusted requester must hold the form's value + 1.
    """
    requester = ctx.requesters.get(interrogation.user_id)
    requester_trusted = requester is not None and requester.trusted
    if interrogation.trusted_workers and not ctx.owner.trusted:
        return "untrusted"
    if not ctx.owner.trusted and not interrogation.safe_ip and not requester_trusted:
        return "untrusted"
    if ctx.worker.require_upfront_kudos and requester is not None and not requester_trusted:
        return "kudos" if _cannot_pay(requester, form, ctx.priority_aliases) else None
    return None


def _cannot_pay(requester: User, form: InterrogationForm, priority_aliases: frozenset[str]) -> bool:
    """Less than the form's value + 1 in hand, and not one of the alchemist's priority users."""
    return requester.alias not in priority_aliases and max(requester.kudos, 0.0) < form.kudos + 1


def ordered_candidates(
    ctx: AlchemyPopContext, candidates: Iterable[Candidate], priority_user_ids: set[int]
) -> list[Candidate]:
    """The forms that pass the filters: those of the owner and the priority users first, then the
    rest, each by the requester's kudos at queue time (highest first), then oldest first; at most 100."""
    eligible = [(form, i) for form, i in candidates if passes_filters(ctx, form, i)]

    def key(candidate: Candidate) -> tuple[float, float]:
        interrogation = candidate[1]
        return (-interrogation.extra_priority, interrogation.created)

    first = sorted((c for c in eligible if c[1].user_id in priority_user_ids), key=key)[:CANDIDATE_LIMIT]
    rest = sorted((c for c in eligible if c[1].user_id not in priority_user_ids), key=key)
    return first + rest[: CANDIDATE_LIMIT - len(first)]


def visible_skipped(counts: dict[str, int]) -> dict[str, int]:
    """The `skipped` object as marshalled: only the model's keys, only when counted."""
    return {reason: counts[reason] for reason in VISIBLE_SKIP_REASONS if counts.get(reason)}
