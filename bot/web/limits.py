"""Limits on the public doors: a sliding-window counter per client address, kept in memory.

In memory on purpose: a limit only has to slow one client down, and it costs no database write
for traffic that is refused. Several processes each keep their own window, so the limit a client
sees behind a load balancer is at most the number of processes times `limit`."""

from __future__ import annotations

from collections import deque

from aiohttp import web


class SlidingWindow:
    """At most `limit` events per key in any `window` seconds."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 100_000) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a sliding window needs limit >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float) -> float | None:
        """Count one event for `key` at `now` (seconds) if it is allowed and answer None; if not,
        count nothing and answer the seconds until it would be."""
        events = self._events.pop(key, None) or deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) >= self.limit:
            self._events[key] = events
            return max(0.0, events[0] + self.window - now)
        events.append(now)
        self._events[key] = events  # re-inserted: the dict stays in order of last use
        while len(self._events) > self.max_keys:
            del self._events[next(iter(self._events))]
        return None


def client_address(request: web.Request, *, trust_forwarded_for: bool) -> str:
    """The address a limit counts: the peer, or behind a trusted proxy the last address in
    X-Forwarded-For (the one the proxy itself saw; earlier ones the client may have made up)."""
    if trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return request.remote or "unknown"
