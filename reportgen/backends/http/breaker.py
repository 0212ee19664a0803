"""The circuit breaker of one endpoint: when each of the first requests of a model failed, the rest are not sent.

An endpoint that refuses connections, rejects the token or does not implement the route fails every
request, and each costs its retries: a thousand prompts would take the better part of an hour to fail. The
breaker watches the first ``window`` requests to end (the first wave the model's concurrency sends): if every
one failed and none answered, it opens, and each later request fails at once, without being sent, with the
reason of the first failure. One answer before that keeps it closed for the rest of the run; a later failure
never opens it (a prompt that fails alone is that prompt's problem). The failed prompts are retried on the
next run, like any failure.

Not pybreaker's kind (which opens after consecutive failures at any time and closes again after a timeout):
this one judges only the first wave, once, which is what tells a dead endpoint from unlucky prompts.
"""

from __future__ import annotations

import threading

__all__ = ["FirstWaveBreaker"]


class FirstWaveBreaker:
    """Thread-safe: the request threads of one backend report to one breaker."""

    def __init__(self, window: int):
        self.window = max(1, window)
        self._lock = threading.Lock()
        self._ended = 0
        self._failed = 0
        self._first_error: str | None = None
        self._reason: str | None = None

    @property
    def reason(self) -> str | None:
        """Why requests are no longer sent (None while the breaker is closed)."""
        return self._reason

    def record(self, error: str | None) -> bool:
        """One request ended (``error`` None: it was answered). True when this record opened the breaker."""
        with self._lock:
            if self._reason is not None or self._ended >= self.window:
                return False
            self._ended += 1
            if error is None:
                self._ended = self.window  # one answer: the endpoint works, the breaker stays closed
                return False
            self._failed += 1
            if self._first_error is None:
                self._first_error = error
            if self._failed < self.window:
                return False
            self._reason = (
                f"not sent: the endpoint failed each of the first {self.window} "
                f"request{'s' if self.window != 1 else ''} ({self._first_error})"
            )
            return True
