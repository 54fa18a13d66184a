"""The chunks placed on one worker that its reports do not include yet (placement.py).

A worker's ``used``/``free`` change only with its heartbeats, and a heartbeat's figures
leave out the chunks still being written. So each placement reserves room here, and only
the report that lists the chunk as stored (``added``) ends the reservation; a report that
does not list it leaves it standing, however recent. (Clearing them all at every report
sent the next chunks to the worker that had just reported: the workers reporting most
often got the most.)

A reservation is made before its chunk id exists (``add``), then bound to the id when the
allocation is handed out (``bind``). It counts a whole chunk (the most a client may write)
until the client's commit gives the chunk's length (``measure``). One never reported ends
when its allocation is given up or expires (``forget``), or after a number of reports
(``settle``).

The other way round, ``Releases``: a replica the worker was told to delete still counts in
its ``used`` until a report lists it removed (the delete goes out in one heartbeat's
answer, is done, and is reported in a later heartbeat). Until then its bytes count as free
already: right after a workload's files are removed, the workers that had not reported
their deletes yet looked fuller by all of it and got no new chunks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass


@dataclass
class Reservation:
    size: int  # bytes it may take: a whole chunk until a commit gives its length
    report: int  # the worker's report count when it was placed
    measured: bool = False  # ``size`` is the chunk's length


class Reservations:
    def __init__(self) -> None:
        self.unbound: deque[Reservation] = deque()  # placed, no chunk id yet: oldest first
        self.bound: dict[int, Reservation] = {}  # chunk id -> its reservation
        self.room = 0  # bytes they may take, summed (``size``)
        self.unmeasured = 0  # how many have no length yet

    def __len__(self) -> int:
        return len(self.unbound) + len(self.bound)

    def add(self, size: int, report: int, chunk_id: int | None = None) -> None:
        reservation = Reservation(size, report)
        if chunk_id is None:
            self.unbound.append(reservation)
        else:
            self._end(self.bound.pop(chunk_id, None))  # one reservation per chunk
            self.bound[chunk_id] = reservation
        self.room += size
        self.unmeasured += 1

    def bind(self, chunk_id: int) -> None:
        """The newest placement was handed out as ``chunk_id``."""
        if self.unbound:
            reservation = self.unbound.pop()
            self._end(self.bound.pop(chunk_id, None))
            self.bound[chunk_id] = reservation

    def drop_newest(self) -> None:
        """The newest placement was not handed out."""
        if self.unbound:
            self._end(self.unbound.pop())

    def measure(self, chunk_id: int, length: int) -> bool:
        """The commit of ``chunk_id`` says how long it is. -> True if that was news."""
        reservation = self.bound.get(chunk_id)
        if reservation is None or reservation.measured or not 0 <= length <= reservation.size:
            return False
        self.room -= reservation.size - length
        self.unmeasured -= 1
        reservation.size, reservation.measured = length, True
        return True

    def settle(self, added: Iterable[int], stale_before: int) -> None:
        """A report lists these chunks as stored: their reservations end (a chunk never
        bound here ends the oldest unbound one). So do those placed before report number
        ``stale_before``: their writes never came."""
        for chunk_id in added:
            reservation = self.bound.pop(chunk_id, None)
            if reservation is None and self.unbound:
                reservation = self.unbound.popleft()
            self._end(reservation)
        while self.unbound and self.unbound[0].report < stale_before:
            self._end(self.unbound.popleft())
        for chunk_id in [c for c, r in self.bound.items() if r.report < stale_before]:
            self._end(self.bound.pop(chunk_id))

    def forget(self, gone: Callable[[int], bool]) -> None:
        """End the reservations of the chunk ids whose allocation is ``gone``."""
        for chunk_id in [c for c in self.bound if gone(c)]:
            self._end(self.bound.pop(chunk_id))

    def listed(self, chunks: Collection[int]) -> int:
        """How many are in ``chunks`` already (committed before the worker reported)."""
        return sum(1 for chunk_id in self.bound if chunk_id in chunks)

    def expected_bytes(self, chunk_size: int, typical: float) -> float:
        """Bytes they will likely take: a chunk of unknown length counts ``typical``."""
        return self.room - self.unmeasured * (chunk_size - typical)

    def _end(self, reservation: Reservation | None) -> None:
        if reservation is not None:
            self.room -= reservation.size
            self.unmeasured -= not reservation.measured


class Releases:
    """The replicas of one worker whose delete it has not reported yet, and their bytes."""

    def __init__(self) -> None:
        self.asked: dict[int, tuple[float, int]] = {}  # chunk id -> (bytes, report), oldest first
        self.nbytes = 0.0  # the bytes they take, summed

    def __len__(self) -> int:
        return len(self.asked)

    def add(self, chunk_id: int, nbytes: float, report: int) -> None:
        """A delete of ``chunk_id`` (``nbytes`` long) was asked at report number ``report``."""
        self._end(chunk_id)
        self.asked[chunk_id] = (nbytes, report)
        self.nbytes += nbytes

    def freed(self, removed: Iterable[int]) -> float | None:
        """The bytes a report listing these chunks removed took out of its ``used``, as
        estimated when their deletes were asked (None: some delete was not asked here)."""
        total = 0.0
        for chunk_id in removed:
            asked = self.asked.get(chunk_id)
            if asked is None:
                return None
            total += asked[0]
        return total

    def settle(self, removed: Iterable[int], stale_before: int) -> None:
        """A report lists these chunks removed: their bytes are out of its ``used``. So are
        those asked before report number ``stale_before`` (a chunk already gone is deleted
        without a report)."""
        for chunk_id in removed:
            self._end(chunk_id)
        while self.asked:
            oldest = next(iter(self.asked))
            if self.asked[oldest][1] >= stale_before:
                break
            self._end(oldest)

    def _end(self, chunk_id: int) -> None:
        ended = self.asked.pop(chunk_id, None)
        if ended is not None:
            self.nbytes = self.nbytes - ended[0] if self.asked else 0.0
