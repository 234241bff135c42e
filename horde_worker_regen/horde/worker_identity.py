"""What the horde says of itself and of this worker: its version, and the id it gave this worker.

Read once as serving begins and then every 10 minutes: the version from `GET /v2/status/heartbeat`,
the id from `GET /v2/workers/name/{name}` until the horde knows one (its first pop creates the
worker; until then the reading is every minute, so a new worker's id shows soon after its first job).
A failed reading keeps what an earlier one found; never read, both are None. Nothing here stops or
delays the worker: every call is bounded and every error is only logged at debug level.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.errors import HordeRequestError

IDENTITY_READ_INTERVAL_S = 600.0  # the version changes with a horde deployment, and the id once
UNKNOWN_ID_READ_INTERVAL_S = 60.0
MAX_VERSION_LENGTH = 64


class HordeIdentityWatch:
    """The horde's version and this worker's id on it, as last read."""

    def __init__(self, client: HordeClient, worker_name: str) -> None:
        self._client = client
        self._name = worker_name
        self.horde_version: str | None = None
        self.worker_id: str | None = None

    async def read(self) -> None:
        """One reading of the version, and of the id while it is not known."""
        try:
            self.horde_version = _version_of(await self._client.heartbeat()) or self.horde_version
        except HordeRequestError as error:
            logger.debug(f"Could not read the horde's version: {error.message}")
        if self.worker_id is not None:
            return
        try:
            self.worker_id = await self._client.worker_id_by_name(self._name)
        except HordeRequestError as error:
            logger.debug(f"Could not read this worker's id on the horde: {error.message}")

    async def run(self) -> None:
        """Read now and then every 10 minutes (every minute while the horde does not know this worker yet)."""
        while True:
            await self.read()
            await asyncio.sleep(UNKNOWN_ID_READ_INTERVAL_S if self.worker_id is None else IDENTITY_READ_INTERVAL_S)


def _version_of(heartbeat: dict[str, object]) -> str | None:
    """The `version` the horde reports, as one short line (it is shown as it comes)."""
    version = heartbeat.get("version")
    if not isinstance(version, str | int | float) or isinstance(version, bool):
        return None
    text = "".join(char for char in str(version) if char.isprintable()).strip()
    return text[:MAX_VERSION_LENGTH] or None
