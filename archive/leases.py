"""Leases in storage: at most one running instance does a job at a time.

Several Kluis instances may share one store (API replicas each running the scheduler, or cron
running ``kluis jobs run``). Before a job runs, its instance takes the job's lease; a lease
expires, so the lease of a killed instance is taken over once it has run out.

The Storage protocol offers conditional *create* (``put(..., if_absent=True)``: ``O_EXCL``/link
on fs, ``If-None-Match: *`` or the guard bucket on S3) but no compare-and-swap. So a lease is a
chain of immutable generations, one object each::

    leases/<job>/<generation:012d>   {"holder", "token", "acquired", "expires", "released"}

The lease's state is its **highest** generation. Every change creates generation n+1 with a
conditional create, after reading generation n:

* **take**: n is released, or expired by more than the ``skew`` margin (by the taker's
  clock) -> create n+1 naming us; an unexpired n is busy, whoever holds it (two threads of
  one instance exclude each other too);
* **renew** (the holder, while it runs): n is still ours -> create n+1 with a later expiry;
* **release**: create n+1 marked released (free at once).

Of racing creators of n+1 exactly one wins; the others get :class:`ObjectExistsError`, i.e.
busy (or lost, for a renewal). A winner then lists the chain again and holds only if its
generation is still the highest. That second look matters because old generations are pruned
(only the newest ``keep`` stay, so the chain stays short): a creator that read a stale chain
could re-create a pruned generation, which is never the highest, so it steps back and deletes
it. The highest generation is never deleted, so it only ever grows.

Record bodies carry a random token, so no two creators ever write identical bytes (an S3
create that finds its own identical bytes counts as idempotent success).

Time. Each instance uses its own clock. A taker waits until ``expires + skew``; the holder
counts its lease as held only until ``expires - skew`` (:meth:`Lease.still_held`), and renews
once half the ttl is gone (:meth:`Lease.keep`, before each unit of work, and a heartbeat
thread, :meth:`Lease.keep_alive`). While the clocks of two instances differ by less than
``skew`` the holder stops before anyone else may start. What a lease cannot stop is a holder
that stalls in the middle of a unit of work (a pause longer than the remaining time): its
next :meth:`Lease.keep` raises :class:`LeaseLostError`, but the unit in flight may overlap
with the new holder's first one; jobs are therefore idempotent as well.

On S3 with a guard bucket, an instance killed between the guard and the object of a new
generation blocks that generation until the guard is ``guard_timeout`` old; takeover then
waits for that (default five minutes) instead of the lease's ttl.

Lease objects carry no retention, so they can always be deleted.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType

from archive.errors import (
    ArchiveError,
    InvalidKeyError,
    InvalidLeaseError,
    LeaseBusyError,
    LeaseLostError,
    ObjectExistsError,
    ObjectNotFoundError,
)
from archive.storage.base import Storage, check_key

__all__ = ["LEASES_PREFIX", "Lease", "LeaseRecord", "Leases"]

LEASES_PREFIX = "leases/"
_WIDTH = 12
_MAX_RECORD = 4096

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_token() -> str:
    return secrets.token_hex(12)


@dataclass(frozen=True)
class LeaseRecord:
    """One generation of a job's lease, as stored."""

    job: str
    generation: int
    holder: str
    token: str
    """Random per grant: tells two grants to the same holder apart."""
    acquired: datetime
    expires: datetime
    released: bool = False

    def free_at(self, skew: timedelta) -> datetime:
        """When another instance may take the lease (by its own clock)."""
        return self.acquired if self.released else self.expires + skew

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "job": self.job,
                "generation": self.generation,
                "holder": self.holder,
                "token": self.token,
                "acquired": self.acquired.isoformat(),
                "expires": self.expires.isoformat(),
                "released": self.released,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_bytes(cls, key: str, data: bytes) -> LeaseRecord:
        """Raises: InvalidLeaseError."""
        try:
            raw = json.loads(data)
            record = cls(
                job=str(raw["job"]),
                generation=int(raw["generation"]),
                holder=str(raw["holder"]),
                token=str(raw["token"]),
                acquired=datetime.fromisoformat(raw["acquired"]),
                expires=datetime.fromisoformat(raw["expires"]),
                released=bool(raw["released"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidLeaseError(key, f"{type(exc).__name__}: {exc}") from exc
        if record.expires.tzinfo is None or record.acquired.tzinfo is None:
            raise InvalidLeaseError(key, "naive timestamps")
        return record


def _job_prefix(job: str) -> str:
    if "/" in job:
        raise InvalidKeyError(job, "a job name is a single key segment")
    return check_key(f"{LEASES_PREFIX}{job}") + "/"


def _generation_key(job: str, generation: int) -> str:
    return f"{_job_prefix(job)}{generation:0{_WIDTH}d}"


def _generation_of(key: str) -> int | None:
    last = key.rsplit("/", 1)[-1]
    return int(last) if len(last) == _WIDTH and last.isdigit() else None


class Leases:
    """Take, inspect and list job leases kept in a :class:`Storage`.

    ``holder`` names this instance in records and messages (host, pid and a random part is a
    good choice); exclusivity does not depend on it being unique.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        holder: str,
        clock: Callable[[], datetime] = _utcnow,
        skew: timedelta = timedelta(seconds=5),
        keep: int = 3,
        new_token: Callable[[], str] = _new_token,
    ) -> None:
        if keep < 2:
            raise ValueError("keep at least two generations")
        if skew < timedelta(0):
            raise ValueError("skew must not be negative")
        self.storage = storage
        self.holder = holder
        self.clock = clock
        self.skew = skew
        self._keep = keep
        self._new_token = new_token

    # -- reading ------------------------------------------------------------------------------

    def _generations(self, job: str) -> list[int]:
        found = (_generation_of(k) for k in self.storage.keys(_job_prefix(job)))
        return sorted(g for g in found if g is not None)

    def _read(self, job: str, generation: int) -> LeaseRecord:
        key = _generation_key(job, generation)
        with self.storage.open(key) as stream:
            data = stream.read(_MAX_RECORD + 1)
        if len(data) > _MAX_RECORD:
            raise InvalidLeaseError(key, "larger than a lease record")
        record = LeaseRecord.from_bytes(key, data)
        if record.job != job or record.generation != generation:
            raise InvalidLeaseError(key, "names another job or generation")
        return record

    def current(self, job: str) -> LeaseRecord | None:
        """The newest generation of the job's lease, or None when it was never taken.

        Raises:
            InvalidLeaseError, InvalidKeyError, StorageUnavailableError.
        """
        for _ in range(5):
            generations = self._generations(job)
            if not generations:
                return None
            try:
                return self._read(job, generations[-1])
            except ObjectNotFoundError:
                continue  # a stray generation removed by its creator; list again
        raise LeaseBusyError(job, "?", None)  # the chain keeps changing under us

    def all(self) -> list[LeaseRecord]:
        """The newest generation of every job that ever took a lease, by job name.

        Raises:
            InvalidLeaseError, StorageUnavailableError.
        """
        jobs = sorted({k.split("/")[1] for k in self.storage.keys(LEASES_PREFIX) if "/" in k})
        records = (self.current(job) for job in jobs)
        return [r for r in records if r is not None]

    def is_free(self, record: LeaseRecord | None) -> bool:
        return record is None or self.clock() >= record.free_at(self.skew)

    # -- writing ------------------------------------------------------------------------------

    def acquire(self, job: str, ttl: timedelta) -> Lease:
        """Take the job's lease for ``ttl``.

        Raises:
            LeaseBusyError: another grant is in force, or another instance won the race.
            InvalidLeaseError, InvalidKeyError, StorageUnavailableError.
            ValueError: ``ttl`` is not longer than twice the skew margin.
        """
        if ttl <= 2 * self.skew:
            raise ValueError("the ttl must be longer than twice the skew margin")
        newest = self.current(job)
        if not self.is_free(newest):
            assert newest is not None
            raise LeaseBusyError(job, newest.holder, newest.expires)
        generation = newest.generation + 1 if newest else 1
        record = self._create(job, generation, ttl)
        if record is None:
            winner = self._peek(job)
            if winner is None:
                raise LeaseBusyError(job, "?", None)
            raise LeaseBusyError(job, winner.holder, winner.expires)
        log.info("lease %s taken by %s until %s", job, self.holder, record.expires.isoformat())
        return Lease(self, record, ttl)

    def _peek(self, job: str) -> LeaseRecord | None:
        with suppress(ArchiveError):
            return self.current(job)
        return None

    def _create(
        self, job: str, generation: int, ttl: timedelta, *, released: bool = False
    ) -> LeaseRecord | None:
        """Create generation ``generation``; None when another creator won it or a higher
        generation exists (then our own stray generation is removed again)."""
        now = self.clock()
        record = LeaseRecord(
            job=job,
            generation=generation,
            holder=self.holder,
            token=self._new_token(),
            acquired=now,
            expires=now if released else now + ttl,
            released=released,
        )
        key = _generation_key(job, generation)
        data = record.to_bytes()
        try:
            self.storage.put(
                key,
                io.BytesIO(data),
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                if_absent=True,
            )
        except ObjectExistsError:
            return None
        generations = self._generations(job)
        if generations and generations[-1] > generation:
            # We re-created a pruned generation from a stale view: step back.
            with suppress(ArchiveError):
                self.storage.delete(key)
            return None
        self._prune(job, generations, generation)
        return record

    def _prune(self, job: str, generations: list[int], own: int) -> None:
        """Delete generations below the newest ``keep`` (never ``own`` or above)."""
        for old in generations[: -self._keep]:
            if old >= own:
                break
            try:
                self.storage.delete(_generation_key(job, old))
            except ArchiveError as exc:  # pruning is housekeeping; the next writer retries
                log.warning("could not prune lease generation %s/%d: %s", job, old, exc)


class Lease:
    """A granted lease. Check it before each unit of work with :meth:`keep`; release it when
    done (it is a context manager). Thread-safe: a heartbeat may renew while the job runs."""

    def __init__(self, leases: Leases, record: LeaseRecord, ttl: timedelta) -> None:
        self._leases = leases
        self._record = record
        self.ttl = ttl
        self._lock = threading.Lock()
        self._lost: str | None = None
        self._released = False
        self._interrupted: str | None = None

    @property
    def job(self) -> str:
        return self._record.job

    @property
    def holder(self) -> str:
        return self._record.holder

    @property
    def record(self) -> LeaseRecord:
        return self._record

    def remaining(self) -> timedelta:
        """Time left before the lease must be counted as gone (skew margin deducted)."""
        return self._record.expires - self._leases.skew - self._leases.clock()

    def still_held(self) -> bool:
        """True while this grant is in force by our clock; no storage access."""
        return self._lost is None and not self._released and self.remaining() > timedelta(0)

    def _lose(self, reason: str) -> LeaseLostError:
        self._lost = reason
        return LeaseLostError(self.job, self.holder, reason)

    def renew(self) -> None:
        """Extend the lease by its ttl from now.

        Succeeds even after a stall past expiry, as long as nobody took the lease meanwhile.

        Raises:
            LeaseLostError: released, or another instance holds a newer generation.
            InvalidLeaseError, StorageUnavailableError: the lease is still ours until it
                runs out; retrying may succeed.
        """
        with self._lock:
            if self._released:
                raise LeaseLostError(self.job, self.holder, "released")
            if self._lost is not None:
                raise LeaseLostError(self.job, self.holder, self._lost)
            newest = self._leases.current(self.job)
            if newest is None or newest.token != self._record.token:
                who = newest.holder if newest is not None else "nobody"
                raise self._lose(f"the newest generation belongs to {who}")
            record = self._leases._create(self.job, newest.generation + 1, self.ttl)
            if record is None:
                raise self._lose("another instance took the lease")
            self._record = record

    def interrupt(self, reason: str) -> None:
        """Ask the job to stop: its next :meth:`keep` raises :class:`LeaseLostError`. The
        lease stays held until the job has stopped and releases it (a shutting-down instance
        must not let another start while its unit of work is still in flight)."""
        self._interrupted = reason

    def keep(self) -> None:
        """Call before each unit of work: renews once half the ttl is gone.

        Raises:
            LeaseLostError: stop working (lease lost, or :meth:`interrupt`); the job resumes
                from its checkpoint, here or elsewhere.
            StorageUnavailableError: while the lease still has time left, only logged.
        """
        if self._interrupted is not None:
            raise LeaseLostError(self.job, self.holder, self._interrupted)
        if self._released:
            raise LeaseLostError(self.job, self.holder, "released")
        if self._lost is not None:
            raise LeaseLostError(self.job, self.holder, self._lost)
        if self.remaining() >= self.ttl / 2:
            return
        try:
            self.renew()
        except LeaseLostError:
            raise
        except ArchiveError as exc:
            if not self.still_held():
                raise self._lose(f"expired while storage failed: {exc}") from exc
            log.warning("could not renew lease %s (%s); still held for now", self.job, exc)

    @contextmanager
    def keep_alive(self, every: timedelta | None = None) -> Iterator[Lease]:
        """Renew from a daemon thread every ``every`` (default: a third of the ttl) while the
        block runs, so a long unit of work keeps the lease. A renewal that finds the lease
        lost stops the thread; :meth:`still_held` and :meth:`keep` then report it."""
        interval = (every or self.ttl / 3).total_seconds()
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    self.renew()
                except LeaseLostError as exc:
                    log.error("%s", exc)
                    return
                except ArchiveError as exc:
                    log.warning("heartbeat of lease %s failed: %s", self.job, exc)

        thread = threading.Thread(target=beat, name=f"lease-{self.job}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def release(self) -> None:
        """Give the lease up now (another instance may take it at once). Idempotent; a lease
        already lost is left alone.

        Raises:
            StorageUnavailableError: the lease then simply runs out.
        """
        with self._lock:
            if self._released or self._lost is not None:
                self._released = True
                return
            self._released = True
            newest = self._leases.current(self.job)
            if newest is None or newest.token != self._record.token:
                return
            self._leases._create(self.job, newest.generation + 1, self.ttl, released=True)
            log.info("lease %s released by %s", self.job, self.holder)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.release()
        except ArchiveError as error:
            log.warning("could not release lease %s: %s (it runs out)", self.job, error)
