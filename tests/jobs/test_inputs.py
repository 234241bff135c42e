"""Fetching source images, masks and extra sources before a job is queued."""

from __future__ import annotations

import base64

import pytest

from horde_worker_regen.horde.errors import HordeRequestError
from horde_worker_regen.horde.url_guard import UrlGuard
from horde_worker_regen.jobs.spec import SourceRefs
from horde_worker_regen.pipeline.inputs import InputFetcher, InputRejected, image_kind, spec_for_inputs
from tests.jobs.conftest import HordeSession, RecordingSleep, webp_bytes

SOURCE = webp_bytes(64, 64, (200, 10, 10))
MASK = webp_bytes(64, 64, (255, 255, 255))


def _fetcher(session: HordeSession, sleep: RecordingSleep, max_bytes: int = 1 << 20) -> InputFetcher:
    # The worker's own guard: the local horde listens on loopback, and its origin is the trusted one.
    guard = UrlGuard.for_horde(session.horde.api_url, allow_private=False)
    return InputFetcher(session.client, clock=lambda: 1000.0, max_bytes=max_bytes, sleep=sleep, guard=guard)


async def test_source_and_mask_are_fetched_from_their_urls(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record(
        source_image=base64.b64encode(SOURCE).decode(),
        source_mask=base64.b64encode(MASK).decode(),
        source_processing="inpainting",
    )
    assert record.sources.source_image is not None and record.sources.source_image.startswith("http")
    inputs, metadata = await _fetcher(horde_session, RecordingSleep()).fetch(record.sources, record.deadline)
    assert (inputs.source_image, inputs.source_mask, metadata) == (SOURCE, MASK, [])
    assert spec_for_inputs(record.spec, inputs).source_processing == "inpainting"


async def test_a_transient_error_is_retried(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record(source_image=base64.b64encode(SOURCE).decode())
    horde_session.horde.faults.add(endpoint="source", kind="error", status=503, times=1)
    sleep = RecordingSleep()
    inputs, metadata = await _fetcher(horde_session, sleep).fetch(record.sources, record.deadline)
    assert inputs.source_image == SOURCE and metadata == [] and sleep.delays == [0.5]


async def test_an_expired_source_becomes_gen_metadata_and_txt2img(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record(
        source_image=base64.b64encode(SOURCE).decode(),
        source_mask=base64.b64encode(MASK).decode(),
        source_processing="inpainting",
    )
    horde_session.horde.faults.add(endpoint="source", kind="expired_url", times=1)
    sleep = RecordingSleep()
    inputs, metadata = await _fetcher(horde_session, sleep).fetch(record.sources, record.deadline)
    assert inputs.source_image is None and inputs.source_mask is None
    assert metadata == [{"type": "source_image", "value": "download_failed"}]
    assert sleep.delays == []  # a 403 is not retried: the URL will not come back to life
    assert spec_for_inputs(record.spec, inputs).source_processing == "txt2img"


async def test_a_failed_mask_keeps_the_source(horde_session: HordeSession) -> None:
    record = await horde_session.pop_record(
        source_image=base64.b64encode(SOURCE).decode(),
        source_mask=base64.b64encode(MASK).decode(),
        source_processing="inpainting",
    )
    horde_session.horde.faults.add(endpoint="source", kind="expired_url", times=1, skip=1)
    inputs, metadata = await _fetcher(horde_session, RecordingSleep()).fetch(record.sources, record.deadline)
    assert inputs.source_image == SOURCE and inputs.source_mask is None
    assert metadata == [{"type": "source_mask", "value": "download_failed"}]


async def test_inline_base64_extra_sources_and_their_failures(horde_session: HordeSession) -> None:
    refs = SourceRefs(extra_source_images=((base64.b64encode(SOURCE).decode(), 0.5), ("not base64!", 1.0)))
    inputs, metadata = await _fetcher(horde_session, RecordingSleep()).fetch(refs, deadline=2000.0)
    assert [(extra.image, extra.strength) for extra in inputs.extra_source_images] == [(SOURCE, 0.5)]
    assert metadata == [{"type": "extra_source_images", "value": "parse_failed", "ref": "1"}]


async def test_size_and_type_limits(horde_session: HordeSession) -> None:
    fetcher = _fetcher(horde_session, RecordingSleep(), max_bytes=len(SOURCE) - 1)
    with pytest.raises(InputRejected, match="too large"):
        await fetcher.fetch_one(base64.b64encode(SOURCE).decode(), 2000.0, attempts=3)
    with pytest.raises(InputRejected, match="not an image"):
        await _fetcher(horde_session, RecordingSleep()).fetch_one(base64.b64encode(b"hello").decode(), 2000.0, 3)
    record = await horde_session.pop_record(source_image=base64.b64encode(SOURCE).decode())
    assert record.sources.source_image is not None
    with pytest.raises(HordeRequestError, match="413"):
        await fetcher.fetch_one(record.sources.source_image, record.deadline, attempts=3)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (SOURCE, "webp"),
        (b"\x89PNG\r\n\x1a\n....", "png"),
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"GIF89a", "gif"),
        (b"<html>", None),
    ],
)
def test_image_kinds_by_magic_bytes(data: bytes, kind: str | None) -> None:
    assert image_kind(data) == kind
