"""A token bucket per agency, kept in each intake process (no I/O; time comes in as an argument).

With several intake replicas each enforces the limit on its own share of traffic; put the same
limit on a shared gateway if a global one is needed (docs/intake.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    def __init__(self, burst_seconds: float = 10.0, max_agencies: int = 100_000) -> None:
        self.burst_seconds = burst_seconds
        self.max_agencies = max_agencies
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, agency_id: str, per_minute: int, now: float) -> float:
        """0 when the request may go ahead; otherwise the seconds to wait before the next one will."""
        if per_minute <= 0:
            return 60.0
        rate = per_minute / 60.0
        capacity = max(1.0, rate * self.burst_seconds)
        bucket = self._buckets.get(agency_id)
        if bucket is None:
            if len(self._buckets) >= self.max_agencies:
                self._buckets.clear()
            bucket = self._buckets[agency_id] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate


class TtlCache:
    """A small time-bounded cache (authenticated API keys): a revoked key stops working within ``ttl`` seconds."""

    def __init__(self, ttl: float = 2.0, max_items: int = 10_000) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._items: dict[str, tuple[float, object]] = {}

    def get(self, key: str, now: float) -> object | None:
        hit = self._items.get(key)
        if hit is None or hit[0] <= now:
            return None
        return hit[1]

    def put(self, key: str, value: object, now: float) -> None:
        if len(self._items) >= self.max_items:
            self._items.clear()
        self._items[key] = (now + self.ttl, value)

    def clear(self) -> None:
        self._items.clear()
