"""Burst mode (`run --burst`): the run ends once every popper of the worker has run dry at the same time.

A popper has run dry when its latest pop came back empty with nothing of its own in flight (the image
popper: no job held; the alchemist: no form held), or when it can never pop again (the alchemist refused
for good). New work makes it busy again. So a worker serving images and alchemy ends only when the
horde has neither a job nor a form for it and both sides are idle; each side alone ends as before.
"""

from __future__ import annotations

from collections.abc import Callable


class BurstWatch:
    """Ends the run (`on_done(reason, 0)`, once) when every member is dry."""

    def __init__(self, on_done: Callable[[str, int], None]) -> None:
        self._on_done = on_done
        self._dry: dict[str, bool] = {}
        self.done = False

    def join(self, work: str) -> BurstMember:
        """A popper of `work` ("job", "form"): it counts as busy until it says otherwise."""
        self._dry[work] = False
        return BurstMember(self, work)

    def is_dry(self, work: str) -> bool:
        """Whether the popper of `work` said it ran dry, with no work since."""
        return self._dry[work]

    def mark(self, work: str, *, dry: bool) -> None:
        """The popper of `work` ran dry, or got work."""
        self._dry[work] = dry
        if dry and not self.done and all(self._dry.values()):
            self.done = True
            self._on_done(f"burst mode: the horde has no {' or '.join(self._dry)} and nothing is in flight", 0)


class BurstMember:
    """One popper's say in a `BurstWatch`."""

    def __init__(self, watch: BurstWatch, work: str) -> None:
        self._watch = watch
        self._work = work

    @property
    def is_dry(self) -> bool:
        """Whether this popper said it ran dry, with no work since."""
        return self._watch.is_dry(self._work)

    @property
    def run_ended(self) -> bool:
        """Whether the watch has ended the run."""
        return self._watch.done

    def dry(self) -> None:
        """The latest pop came back empty and nothing is in flight (or this popper will not pop again)."""
        self._watch.mark(self._work, dry=True)

    def busy(self) -> None:
        """Work arrived: the run goes on."""
        self._watch.mark(self._work, dry=False)
