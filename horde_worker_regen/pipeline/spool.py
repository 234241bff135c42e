"""A durable spool of finished results: each id's final image and submit fields, on disk until reported.

After the safety verdicts are applied and before its upload starts, every id of a job with images is
written to `<spool_dir>/<id>.json`: the bytes that will be uploaded (a censor image where one replaced
the generation), its upload URL, seed, submit state, gen_metadata, and its deadline as wall-clock time
(the monotonic clock does not survive a restart). An entry is removed once its report has ended
(submitted, or dropped by the submitter). A worker that crashed leaves its entries behind; the next
start reports those still within their deadline and drops the others with one log line each.

Writes are atomic (temp file, fsync, rename, fsync of the folder), so a crash never leaves a half
entry under an entry's name; an entry that does not parse or whose image does not match its checksum
is logged and moved to `rejected/`. A failed write (a full disk) is logged and the job goes out from
memory all the same.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from loguru import logger
from pydantic import BaseModel, ConfigDict, ValidationError

from horde_worker_regen.jobs.record import JobRecord, JobState
from horde_worker_regen.jobs.spec import GenerationSpec, SourceRefs
from horde_worker_regen.pipeline.submitter import ImageReport

SUFFIX = ".json"
TEMP_PREFIX = ".partial-"
REJECTED = "rejected"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


class SpoolEntry(BaseModel):
    """Everything needed to upload and submit one id without the process that generated it."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    job_id: str
    upload_url: str | None
    seed: int
    state: str
    censored: bool
    gen_metadata: tuple[dict[str, Any], ...]
    deadline: float  # wall-clock (time.time()) seconds
    ttl: int
    model: str
    width: int
    height: int
    steps: int
    image_sha256: str
    image: bytes


class CorruptEntry(ValueError):
    """An entry that cannot be trusted: truncated, not an entry, or an image that fails its checksum."""


def entry_bytes(entry: SpoolEntry) -> bytes:
    """The file content of an entry."""
    return entry.model_dump_json().encode()


def parse_entry(data: bytes) -> SpoolEntry:
    """An entry from its file content, or CorruptEntry."""
    try:
        entry = SpoolEntry.model_validate_json(data)
    except ValidationError as error:
        raise CorruptEntry(
            f"not a complete spool entry ({error.error_count()} problem(s): {error.errors()[0]['msg']})"
        ) from None
    if hashlib.sha256(entry.image).hexdigest() != entry.image_sha256:
        raise CorruptEntry("its image does not match its checksum")
    return entry


def entries_for(record: JobRecord, reports: Iterable[ImageReport], wall_deadline: float) -> list[SpoolEntry]:
    """One entry per report of a job whose verdicts are applied."""
    spec = record.spec
    return [
        SpoolEntry(
            job_id=record.ids[report.index],
            upload_url=record.upload_urls[report.index],
            seed=spec.seed_of(report.index),
            state=report.state,
            censored=report.state != "ok",
            gen_metadata=report.gen_metadata,
            deadline=wall_deadline,
            ttl=record.ttl,
            model=spec.model,
            width=spec.width,
            height=spec.height,
            steps=spec.steps,
            image_sha256=hashlib.sha256(report.image).hexdigest(),
            image=report.image,
        )
        for report in reports
    ]


def record_for(entry: SpoolEntry, now: float, wall_now: float) -> tuple[JobRecord, ImageReport]:
    """A one-id record (deadline moved onto this process's monotonic clock) and its report."""
    spec = GenerationSpec(
        job_key=entry.job_id, model=entry.model, prompt="", width=entry.width, height=entry.height,
        steps=entry.steps, n_iter=1, seed=entry.seed, sampler_name="", cfg_scale=0.0, karras=False,
        denoising_strength=None, post_processing=(), source_processing="img2img",
    )  # fmt: skip
    popped_at = now + (entry.deadline - wall_now) - entry.ttl
    record = JobRecord((entry.job_id,), (entry.upload_url,), spec, SourceRefs(), False, entry.ttl, popped_at)
    record.entered[JobState.POPPED] = popped_at
    return record, ImageReport(0, entry.image, entry.state, entry.gen_metadata)


class ResultSpool:
    """The spool folder: atomic writes, removal, and reading back what an earlier run left."""

    def __init__(
        self, folder: Path, wall_clock: Callable[[], float] = time.time, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.folder = folder
        self._wall_clock = wall_clock
        self._clock = clock

    def path_of(self, job_id: str) -> Path:
        """Where an id's entry lives (ids that are not plain names are hashed)."""
        name = job_id if _SAFE_NAME.fullmatch(job_id) else hashlib.sha256(job_id.encode()).hexdigest()
        return self.folder / f"{name}{SUFFIX}"

    def wall_deadline(self, record: JobRecord) -> float:
        """The record's monotonic deadline as wall-clock time."""
        return self._wall_clock() + (record.deadline - self._clock())

    def write(self, entries: list[SpoolEntry]) -> bool:
        """Write every entry atomically; on an OSError log why, leave nothing half-written, return False."""
        for entry in entries:
            path = self.path_of(entry.job_id)
            try:
                self._write_atomically(path, entry_bytes(entry))
            except OSError as error:
                self._log_write_failure(path, error)
                return False
        return True

    def _write_atomically(self, path: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.folder)
        try:
            with os.fdopen(descriptor, "wb") as temp:
                temp.write(data)
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        self._fsync_folder()

    def _fsync_folder(self) -> None:
        """Make the rename itself durable (POSIX); Windows cannot open a folder for fsync."""
        if os.name != "posix":
            return
        descriptor = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _log_write_failure(self, path: Path, error: OSError) -> None:
        existing = next((folder for folder in (self.folder, *self.folder.parents) if folder.is_dir()), Path("."))
        try:
            free = f"{shutil.disk_usage(existing).free / 1e6:.1f} MB free on {existing}"
        except OSError:
            free = "free space unknown"
        cause = "the disk is full" if error.errno == errno.ENOSPC else f"{error.strerror or error}"
        logger.error(
            f"Cannot spool the result to {path} ({cause}; {free}): it is uploaded from memory, "
            "but would be lost if the worker crashed before submitting it"
        )

    def remove(self, job_ids: Iterable[str]) -> None:
        """Forget the entries of ids whose report has ended."""
        for job_id in job_ids:
            try:
                self.path_of(job_id).unlink(missing_ok=True)
            except OSError as error:
                logger.error(f"Cannot remove the spooled result {self.path_of(job_id)}: {error}")

    def load(self) -> list[SpoolEntry]:
        """Every sound entry an earlier run left; leftovers of interrupted writes are deleted, bad ones moved aside."""
        if not self.folder.is_dir():
            return []
        for partial in self.folder.glob(f"{TEMP_PREFIX}*"):
            logger.warning(f"Deleting {partial}: a spool write that never completed")
            partial.unlink(missing_ok=True)
        entries = []
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            try:
                entries.append(parse_entry(path.read_bytes()))
            except (OSError, CorruptEntry) as error:
                self._reject(path, str(error))
        return entries

    def _reject(self, path: Path, reason: str) -> None:
        target = self.folder / REJECTED / path.name
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
            logger.error(f"Spooled result {path} is unusable ({reason}); moved to {target}")
        except OSError as error:
            logger.error(f"Spooled result {path} is unusable ({reason}) and could not be moved aside: {error}")


class Resumer(Protocol):
    """What takes a spooled result back into reporting (the pipeline)."""

    def resume(self, record: JobRecord, reports: list[ImageReport]) -> None:
        """Report a result an earlier run generated."""


def resume_spooled(
    spool: ResultSpool, resumer: Resumer, now: float | None = None, wall_now: float | None = None
) -> int:
    """Hand every spooled result still within its deadline to reporting, drop the rest; returns how many resumed."""
    now = time.monotonic() if now is None else now
    wall_now = time.time() if wall_now is None else wall_now
    resumed = 0
    for entry in spool.load():
        late = wall_now - entry.deadline
        if late >= 0:
            logger.warning(f"Spooled result {entry.job_id} dropped: its deadline passed {late:.0f}s ago")
            spool.remove([entry.job_id])
            continue
        record, report = record_for(entry, now, wall_now)
        resumer.resume(record, [report])
        resumed += 1
    if resumed:
        logger.info(f"Resuming {resumed} spooled result(s) left by an earlier run")
    return resumed
