"""Burst mode's watch: the run ends once every popper ran dry at the same time, and only then."""

from __future__ import annotations

from horde_worker_regen.pipeline.burst import BurstWatch


def test_the_run_ends_only_when_every_popper_is_dry_at_once() -> None:
    stops: list[tuple[str, int]] = []
    watch = BurstWatch(lambda reason, code: stops.append((reason, code)))
    images, forms = watch.join("job"), watch.join("form")
    images.dry()
    assert stops == [] and images.is_dry and not forms.is_dry  # the alchemist still has work
    images.busy()  # a job arrived meanwhile: the image side is busy again
    forms.dry()
    assert stops == []
    images.dry()
    assert stops == [("burst mode: the horde has no job or form and nothing is in flight", 0)]
    assert images.run_ended and forms.run_ended
    forms.busy()
    forms.dry()
    assert len(stops) == 1  # ended once


def test_a_single_popper_ends_the_run_alone() -> None:
    stops: list[tuple[str, int]] = []
    watch = BurstWatch(lambda reason, code: stops.append((reason, code)))
    watch.join("form").dry()
    assert stops == [("burst mode: the horde has no form and nothing is in flight", 0)]
