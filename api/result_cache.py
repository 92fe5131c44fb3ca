"""A per-worker cache of finished ``GET /recommendations`` answers.

An answer is cached under everything that changes it (:class:`AnswerKey`):
the customer's pseudonym, ``k``, the filters, ``explain``, whether the
customer is personalised, the model version and the thresholds version. The
other things an answer depends on change through :class:`~api.state.ServingState`,
which invalidates here as it applies them:

- a customer's new events (this worker's ``POST /events`` or the sync loop),
  a consent change and an erasure drop that customer's entries;
- a model swap and a new thresholds version drop everything.

So the cache never serves an answer the model would not give now; it saves
the recomputation. A request that was computing while its customer's entries
were invalidated (or everything was cleared) does not store its answer: it
may have read the state from before the change. For that every invalidation
advances a *generation*; a request takes the generation before it reads any
state, and :meth:`ResultCache.put` refuses the answer if an invalidation of
that customer, or a clear, happened since. The cache remembers the last
``RECENT_INVALIDATIONS`` of them; an answer older than all of those is refused
too. Invalidations of other customers do not cost the answer its place.

Entries are bounded by count and by the bytes of their answers (least
recently used go first: an explained answer of 10 items is ~35 KB on
Complete Journey, so the byte bound is what caps a worker's memory), and by
age (``ttl_seconds``, a safety net: nothing is known to need it). The
request id is never cached; the route adds a fresh one to every answer.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

RECENT_INVALIDATIONS = 4096
CLEARED = None  # in the log of recent invalidations: everything was dropped


class AnswerKey(NamedTuple):
    customer: str  # the pseudonym
    k: int
    category: str | None
    max_price: float | None
    explain: bool
    personalise: bool
    model_version: str
    thresholds_version: int | None


@dataclass(frozen=True)
class CachedAnswer:
    """A serialised answer without its request id (``body`` is the JSON object after
    its opening brace), and the customer status it was served with (for the metrics)."""

    status: str
    body: bytes


class ResultCache:
    """LRU + TTL map of :class:`AnswerKey` to :class:`CachedAnswer`, with per-customer invalidation.

    Thread-safe (requests run in a thread pool). ``max_entries=0`` disables it:
    ``get`` always misses and ``put`` stores nothing.
    """

    def __init__(
        self,
        *,
        max_entries: int,
        ttl_seconds: float,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be 0 (off) or more, got {max_entries}")
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive (or None: no byte bound), got {max_bytes}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._bytes = 0  # sum of the kept answers' body lengths
        self._clock = clock
        self._entries: OrderedDict[AnswerKey, tuple[float, CachedAnswer]] = OrderedDict()
        self._by_customer: dict[str, set[AnswerKey]] = {}
        self._generation = 0
        # (generation, customer or CLEARED), oldest first: what put checks a late answer against
        self._recent: deque[tuple[int, str | None]] = deque(maxlen=RECENT_INVALIDATIONS)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The kept answers' bodies, in bytes (what :attr:`max_bytes` bounds)."""
        return self._bytes

    def entries_of(self, customer: str) -> int:
        """How many answers are kept for ``customer`` (a pseudonym)."""
        return len(self._by_customer.get(customer, ()))

    def generation(self) -> int:
        """Take this before reading any state an answer depends on; pass it to :meth:`put`."""
        return self._generation

    def get(self, key: AnswerKey) -> CachedAnswer | None:
        if not self.enabled:
            return None
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            expires, answer = hit
            if self._clock() >= expires:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return answer

    def put(self, key: AnswerKey, answer: CachedAnswer, *, generation: int) -> bool:
        """Store ``answer`` unless ``key.customer``'s entries were invalidated, or all were
        cleared, since ``generation`` was taken."""
        if not self.enabled:
            return False
        size = len(answer.body)
        if self.max_bytes is not None and size > self.max_bytes:
            return False  # would evict everything and still not fit
        with self._lock:
            if generation != self._generation and self._stale(key.customer, generation):
                return False
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (self._clock() + self.ttl_seconds, answer)
            self._bytes += size
            self._by_customer.setdefault(key.customer, set()).add(key)
            while len(self._entries) > self.max_entries or (
                self.max_bytes is not None and self._bytes > self.max_bytes
            ):
                self._drop(next(iter(self._entries)))
            return True

    def _stale(self, customer: str, generation: int) -> bool:
        recent = self._recent
        if len(recent) == recent.maxlen and recent[0][0] > generation:
            return True  # some invalidations since are forgotten: assume the worst
        for g, c in reversed(recent):
            if g <= generation:
                return False
            if c == customer or c is CLEARED:
                return True
        return False

    def invalidate(self, customer: str) -> int:
        """Drop every entry of ``customer`` (a pseudonym); how many there were."""
        return self.invalidate_many((customer,))

    def invalidate_many(self, customers: Iterable[str]) -> int:
        """Drop every entry of each of ``customers``, as one invalidation; how many there were."""
        with self._lock:
            self._generation += 1
            n = 0
            for customer in customers:
                self._recent.append((self._generation, customer))
                for key in self._by_customer.pop(customer, ()):
                    self._bytes -= len(self._entries.pop(key)[1].body)
                    n += 1
            return n

    def clear(self) -> int:
        """Drop everything (a model swap, a new thresholds version); how many entries there were."""
        with self._lock:
            self._generation += 1
            self._recent.append((self._generation, CLEARED))
            n = len(self._entries)
            self._entries.clear()
            self._by_customer.clear()
            self._bytes = 0
            return n

    def _drop(self, key: AnswerKey) -> None:
        self._bytes -= len(self._entries.pop(key)[1].body)
        keys = self._by_customer.get(key.customer)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_customer[key.customer]
