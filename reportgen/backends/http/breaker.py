"""The circuit breaker of one endpoint: when each of the first requests of a model failed, the rest are not sent.

An endpoint that refuses connections, rejects the token or does not implement the route fails every
request, and each costs its retries: a thousand prompts would take the better part of an hour to fail. The
breaker lets the first ``window`` requests go (the first wave the model's concurrency sends) and holds the
next ones until the wave is decided: if every request of it failed, it opens, and each later request fails at
once, without being sent, with the reason of the first failure. One answer keeps it closed for the rest of
the run, and releases the held requests at once; a later failure never opens it (a prompt that fails alone
is that prompt's problem). The failed prompts are retried on the next run, like any failure.

Not pybreaker's kind (which opens after consecutive failures at any time and closes again after a timeout):
this one judges only the first wave, once, which is what tells a dead endpoint from unlucky prompts.
"""

from __future__ import annotations

import threading

__all__ = ["FirstWaveBreaker"]


class FirstWaveBreaker:
    """Thread-safe: the request threads of one backend ask it before each request and report each outcome.

    While the first wave is undecided, only ``window`` requests are sent: a thread that would send one more
    waits until a request of the wave is answered (the endpoint works: it goes on at once) or every one of
    them failed (it is not sent). So a dead endpoint costs one wave, not a wave per thread."""

    def __init__(self, window: int):
        self.window = max(1, window)
        self._decided = threading.Condition()
        self._started = 0
        self._failed = 0
        self._first_error: str | None = None
        self._reason: str | None = None
        self._done = False  # the first wave is decided: the breaker stays as it is for the rest of the run

    @property
    def reason(self) -> str | None:
        """Why requests are no longer sent (None while the breaker is closed)."""
        return self._reason

    def admit(self) -> str | None:
        """Before a request: None to send it (after waiting, while the first wave is full and undecided), or the
        reason it is not sent."""
        with self._decided:
            while not self._done and self._started >= self.window:
                self._decided.wait()
            if not self._done:
                self._started += 1
            return self._reason

    def record(self, error: str | None) -> bool:
        """One request ended (``error`` None: it was answered). True when this record opened the breaker."""
        with self._decided:
            if self._done:
                return False
            if error is None:  # one answer: the endpoint works, the breaker stays closed
                self._done = True
                self._decided.notify_all()
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
            self._done = True
            self._decided.notify_all()
            return True
