"""When an image is censored, as a pure function of the job, the settings and the safety verdict.

- CSAM is always censored (`censorship: csam`, submit state `csam`).
- NSFW is censored (`censorship: nsfw`, state `censored`) when the requester asked for it
  (`use_nsfw_censor`), when this worker is SFW (`nsfw: false`), or when the prompt contains a word
  of the operator's `censorlist` (case-insensitive).
"""

from __future__ import annotations

from collections.abc import Iterable

from horde_worker_regen.jobs.spec import CensorPolicy, Censorship
from horde_worker_regen.safety.backend import SafetyScores


def censorlist_hit(prompt: str, censorlist: Iterable[str]) -> bool:
    """True if any censorlist word appears in the prompt (negative part included), ignoring case."""
    lowered = prompt.lower()
    return any(word and word.lower() in lowered for word in censorlist)


def censor_policy(*, worker_nsfw: bool, use_nsfw_censor: bool, prompt: str, censorlist: Iterable[str]) -> CensorPolicy:
    """The censoring inputs of one job."""
    hit = censorlist_hit(prompt, censorlist)
    return CensorPolicy(censor_nsfw=use_nsfw_censor or not worker_nsfw or hit, censorlist_hit=hit)


def censorship_for(scores: SafetyScores, policy: CensorPolicy) -> Censorship | None:
    """How the image must be censored, or None to keep it."""
    if scores.is_csam:
        return "csam"
    if scores.is_nsfw and policy.censor_nsfw:
        return "nsfw"
    return None
