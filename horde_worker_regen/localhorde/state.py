"""The in-memory store of the local horde: users, workers, requests, jobs and stored objects.

Only storage and lookups live here; the rules that move a job through its states are in `jobs`.
All access happens on the event loop, so a read-check-write without an `await` in between is
atomic; that is what gives submit its compare-and-set semantics.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import TypeVar, overload

from loguru import logger

from horde_worker_regen.localhorde.alchemy_entities import AlchemyStore
from horde_worker_regen.localhorde.clock import Clock
from horde_worker_regen.localhorde.entities import (
    ANON_API_KEY,
    ProcessingGeneration,
    SubmitAttempt,
    User,
    WaitingPrompt,
    Worker,
)
from horde_worker_regen.localhorde.stats import ModelStats

AnyWorker = TypeVar("AnyWorker", bound=Worker)


def new_api_key() -> str:
    """A 22-character key, as the horde issues them (`secrets.token_urlsafe(16)`)."""
    return secrets.token_urlsafe(16)


@dataclass
class StoredObject:
    """Bytes in the upload sink (generated images) or source bucket."""

    data: bytes
    content_type: str
    stored_at: float


@dataclass
class ObjectStore:
    """A bucket → key → object map standing in for R2."""

    buckets: dict[str, dict[str, StoredObject]] = field(default_factory=dict)

    def put(self, bucket: str, key: str, obj: StoredObject) -> None:
        """Store (or overwrite) one object."""
        self.buckets.setdefault(bucket, {})[key] = obj

    def get(self, bucket: str, key: str) -> StoredObject | None:
        """Fetch one object."""
        return self.buckets.get(bucket, {}).get(key)

    def delete(self, bucket: str, key: str) -> None:
        """Remove one object if present."""
        self.buckets.get(bucket, {}).pop(key, None)


class HordeState:
    """Every record of the local horde, with the lookups the endpoints need."""

    def __init__(self, clock: Clock, *, detect_suspicion: bool = True) -> None:
        self.clock = clock
        # Suspicion (UNREASONABLY_FAST, TOO_MANY_JOBS_ABORTED) pauses untrusted workers at 5.
        self.detect_suspicion = detect_suspicion
        self.users: dict[int, User] = {}
        self.workers: dict[str, Worker] = {}
        self.requests: dict[str, WaitingPrompt] = {}
        self.generations: dict[str, ProcessingGeneration] = {}
        self.submit_attempts: dict[str, list[SubmitAttempt]] = {}  # job or form id -> every submit, in order
        self.alchemy = AlchemyStore()
        self.objects = ObjectStore()
        self.model_stats = ModelStats()
        self._users_by_key: dict[str, User] = {}
        self._worker_ids_by_name: dict[str, str] = {}
        self._generation_ids_by_request: dict[str, list[str]] = {}
        self._next_user_id = 1
        self.add_user("Anonymous", api_key=ANON_API_KEY, user_id=0)

    # Users

    def add_user(
        self,
        username: str,
        *,
        api_key: str | None = None,
        user_id: int | None = None,
        kudos: float = 0.0,
        trusted: bool = False,
        roles: set[str] | None = None,
        worker_invited: int = 0,
    ) -> User:
        """Create an account; a missing key or id is generated."""
        key = api_key or new_api_key()
        if key in self._users_by_key:
            raise ValueError(f"an account with that API key already exists ({username})")
        uid = self._next_user_id if user_id is None else user_id
        if uid in self.users:
            raise ValueError(f"user id {uid} is taken")
        self._next_user_id = max(self._next_user_id, uid + 1)
        user = User(
            id=uid,
            username=username,
            api_key=key,
            kudos=kudos,
            trusted=trusted,
            roles=set(roles or ()),
            worker_invited=worker_invited,
            created=self.clock.now(),
        )
        self.users[uid] = user
        self._users_by_key[key] = user
        logger.debug(f"local horde: user {user.alias} created")
        return user

    def user_by_key(self, api_key: str) -> User | None:
        """The account an API key belongs to."""
        return self._users_by_key.get(api_key)

    def user_by_alias(self, alias: str) -> User | None:
        """Resolve `name#id` by its id part."""
        _, _, raw_id = alias.rpartition("#")
        if not raw_id.isdigit():
            return None
        return self.users.get(int(raw_id))

    # Workers

    def worker_by_name(self, name: str) -> Worker | None:
        """Exact, case-sensitive name lookup."""
        worker_id = self._worker_ids_by_name.get(name)
        return self.workers.get(worker_id) if worker_id else None

    @overload
    def add_worker(self, name: str, owner: User) -> Worker: ...

    @overload
    def add_worker(self, name: str, owner: User, worker_class: type[AnyWorker]) -> AnyWorker: ...

    def add_worker(self, name: str, owner: User, worker_class: type[Worker] = Worker) -> Worker:
        """Create a worker (an image worker unless told otherwise) on its first pop."""
        worker = worker_class(id=str(uuid.uuid4()), name=name, owner_id=owner.id, created=self.clock.now())
        self.workers[worker.id] = worker
        self._worker_ids_by_name[name] = worker.id
        logger.info(f"local horde: {worker.kind} worker '{name}' created for {owner.alias}")
        return worker

    def rename_worker(self, worker: Worker, new_name: str) -> None:
        """Change a worker's name."""
        self._worker_ids_by_name.pop(worker.name, None)
        worker.name = new_name
        self._worker_ids_by_name[new_name] = worker.id

    def workers_of(self, user: User) -> list[Worker]:
        """A user's workers."""
        return [w for w in self.workers.values() if w.owner_id == user.id]

    # Requests and jobs

    def add_request(self, wp: WaitingPrompt) -> None:
        """Queue a request."""
        self.requests[wp.id] = wp

    def active_requests(self) -> list[WaitingPrompt]:
        """Requests a worker could still be given (`n > 0`, not faulted, not expired)."""
        now = self.clock.now()
        return [wp for wp in self.requests.values() if wp.n > 0 and not wp.faulted and wp.expiry > now]

    def add_generation(self, pg: ProcessingGeneration) -> None:
        """Record a started job."""
        self.generations[pg.id] = pg
        self._generation_ids_by_request.setdefault(pg.wp_id, []).append(pg.id)

    def record_submit(self, job_id: str, attempt: SubmitAttempt) -> None:
        """Keep one submit received for a known job (the server keeps no such record; tests read it)."""
        self.submit_attempts.setdefault(job_id, []).append(attempt)

    def generations_of(self, wp: WaitingPrompt) -> list[ProcessingGeneration]:
        """The jobs started for a request, oldest first."""
        return [self.generations[pg_id] for pg_id in self._generation_ids_by_request.get(wp.id, [])]

    def delete_request(self, wp: WaitingPrompt) -> None:
        """Delete a request and, as the database cascade does, all its jobs."""
        for pg_id in self._generation_ids_by_request.pop(wp.id, []):
            self.generations.pop(pg_id, None)
        self.requests.pop(wp.id, None)

    def queue_position(self, wp: WaitingPrompt) -> int:
        """How many waiting requests were created before this one."""
        return sum(1 for other in self.active_requests() if other.created < wp.created)
