"""The official file's other worker roles: the scribe (text) and the alchemist (alchemy forms).

The official template holds a scribe section and an alchemist section next to the dreamer's keys,
so an operator's file has them even when they never ran those roles. The scribe keys are accepted
and ignored. The alchemist serves alchemy forms under its own name, beside the dreamer or alone:

- it is on only with `alchemist: true`. The official 10.1.1 template always holds `alchemist_name`
  and `forms` (with the defaults) in a section it calls a placeholder, so a migrated file never turns
  alchemy on by itself; written without `alchemist: true` they are checked and noted, nothing more;
- `dreamer: false` turns image jobs off (an alchemist-only worker); with both off nothing is served,
  which is refused;
- `forms` names what it serves (`post_process` = every post-processor, strip_background included);
  `served_form_names` spells them as the horde does.
"""

from __future__ import annotations

import difflib

from horde_worker_regen.shared.post_processors import KNOWN_POST_PROCESSORS

SCRIBE_KEYS = ("scribe_name", "kai_url", "max_length", "max_context_length", "branded_model")
ALCHEMIST_KEYS = (
    "alchemist", "alchemist_name", "forms", "alchemy_caption_enabled", "alchemy_allow_concurrent",
    "alchemy_max_concurrency", "alchemy_vram_headroom_mb",
)  # fmt: skip
DEFAULT_ALCHEMIST_NAME = "An Awesome Alchemist"

POST_PROCESS_GROUP = "post_process"
# The forms the horde's interrogation pop accepts that this worker will serve, by their normalised
# spelling, mapped to the horde's own. `post_process` stands for every post-processor at once.
_BASIC_FORMS = {"caption": "caption", "interrogation": "interrogation", "nsfw": "nsfw"}
HORDE_FORM_NAMES: dict[str, str] = {
    **_BASIC_FORMS,
    **{name.lower().replace("-", "_"): name for name in sorted(KNOWN_POST_PROCESSORS)},
}
DEFAULT_FORMS = ("caption", "nsfw", "interrogation", POST_PROCESS_GROUP)


def normalise_form(written: str) -> str:
    """A form as the operator wrote it, in the official worker's spelling: lower case, `-` as `_`."""
    return written.strip().lower().replace("-", "_")


def normalise_forms(written: list[str]) -> list[str]:
    """The forms to serve: each checked and normalised, repeats dropped; none written means the defaults.

    Raises ValueError naming every unknown form, with the closest known one where there is one.
    """
    known = [*HORDE_FORM_NAMES, POST_PROCESS_GROUP]
    forms: list[str] = []
    unknown: list[str] = []
    for entry in written:
        form = normalise_form(entry)
        if form not in known:
            close = difflib.get_close_matches(form, known, n=1, cutoff=0.7)
            unknown.append(f"{entry!r}" + (f" (did you mean '{close[0]}'?)" if close else ""))
        elif form not in forms:
            forms.append(form)
    if unknown:
        raise ValueError(
            f"unknown alchemy form {', '.join(unknown)}; known: caption, interrogation, nsfw, post-process "
            "(every post-processor), or one post-processor by name (e.g. strip_background, RealESRGAN_x4plus)"
        )
    return forms or list(DEFAULT_FORMS)


def served_form_names(forms: list[str]) -> tuple[str, ...]:
    """The horde's names of the normalised `forms` (`post_process` expanded), in a stable order, once each."""
    names: list[str] = []
    for form in forms:
        expanded = sorted(KNOWN_POST_PROCESSORS) if form == POST_PROCESS_GROUP else [HORDE_FORM_NAMES[form]]
        names += [name for name in expanded if name not in names]
    return tuple(names)


def same_worker_name(first: str, second: str) -> bool:
    """Whether two worker names would clash on the horde, where names are unique across every role."""
    return first.strip().casefold() == second.strip().casefold()
