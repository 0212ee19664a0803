"""The wire under every HTTP protocol: the shared ``httpx`` client, failures, redaction and retries.

Only failures that may pass are retried: connection errors, timeouts and the answers in
``RETRYABLE_STATUS`` (408, 425, 429, 500, 502, 503, 504), up to ``max_retries`` times after the first
attempt, with exponential backoff and jitter, honouring ``Retry-After`` (seconds or an HTTP date). Any
other answer (400, 401, 403, 404, 405, 501, …) says the request will never work: the prompt fails at once.
A 503 with ``estimated_time`` means the model is still loading: wait that long (capped) and ask again,
without using up a retry. The loop itself is ``tenacity``'s; :class:`_Schedule` decides, once per failed
attempt, whether and how long to wait.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Generic, TypeVar, overload

import tenacity

T = TypeVar("T")

#: Answers worth asking again: a timeout or "too early" (408, 425), rate limiting (429) and the 5xx answers of a
#: server or gateway that may recover (500, 502, 503, 504). Every other error answer fails the request at once:
#: 501 (not implemented), 505 and the like will not pass on a second try.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# Answers meaning "this server does not take that request shape" (streaming, non-standard fields): ask again
# without the optional parts (see HTTPBackend._attempt).
STREAM_REJECTED_STATUS = frozenset({400, 404, 405, 415, 422, 501})
MAX_LOADING_WAITS = 100


class Failure(Exception):
    """One attempt failed. ``retry`` says whether another attempt may help; ``wait_s`` is the server's ask."""

    def __init__(
        self,
        reason: str,
        kind: str,
        retry: bool,
        wait_s: float | None = None,
        loading: bool = False,
        status: int | None = None,
        detail: str | None = None,
    ):
        super().__init__(reason)
        self.status = status
        self.detail = detail  # e.g. the server's error message, appended after the retry count
        self.reason = reason
        self.kind = kind  # "http", "timeout", "connection", "malformed", "shape"
        self.retry = retry
        self.wait_s = wait_s
        self.loading = loading


class Redactor:
    """Keeps the bearer token out of text that leaves the backend (results, errors, excerpts).

    Scrubbed by pattern, not only by value: every run of text that is a piece of ``PIECE`` or more
    characters of the token, in any letter case, is replaced, and so are the pieces of its base64
    (standard and URL-safe, at each of the three byte alignments it can have inside a longer encoding)
    and URL-encoded forms. So a server that echoes the token split, upper-cased or encoded leaves no
    piece of it longer than ``PIECE - 1`` characters in what we store.
    """

    PIECE = 8
    MASK = "***"

    def __init__(self) -> None:
        self._token: str | None = None
        self._grams: frozenset[str] = frozenset()
        self._width = self.PIECE

    @property
    def token(self) -> str | None:
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = value or None
        self._width = min(self.PIECE, len(value)) if value else self.PIECE
        self._grams = (
            frozenset(form[i : i + self._width] for form in token_forms(value) for i in range(len(form) - self._width + 1))
            if value
            else frozenset()
        )

    @overload
    def scrub(self, text: str) -> str: ...
    @overload
    def scrub(self, text: None) -> None: ...
    def scrub(self, text: str | None) -> str | None:
        if text is None or not self._grams or len(text) < self._width:
            return text
        width, grams, low = self._width, self._grams, text.lower()
        covered: list[tuple[int, int]] = []
        for i in range(len(low) - width + 1):
            if low[i : i + width] in grams:
                if covered and i <= covered[-1][1]:
                    covered[-1] = (covered[-1][0], i + width)
                else:
                    covered.append((i, i + width))
        if not covered:
            return text
        out, last = [], 0
        for start, end in covered:
            out.append(text[last:start])
            out.append(self.MASK)
            last = end
        out.append(text[last:])
        return "".join(out)

    def excerpt(self, body: str, n: int = 120) -> str:
        """The start of ``body`` on one line, scrubbed before it is cut (so no piece of the token survives)."""
        body = self.scrub(" ".join(body.split())) or ""
        return repr(body[:n] + ("…" if len(body) > n else ""))


def token_forms(token: str | None) -> list[str]:
    """The token as it may be echoed, lower-cased: as is, URL-encoded, and the parts of its base64 forms
    that do not depend on the bytes around it (at offsets 0, 1 and 2 within a longer base64 text)."""
    import base64
    from urllib.parse import quote, quote_plus

    if not token:
        return []
    raw = token.encode("utf-8")
    forms = {token, quote(token, safe=""), quote_plus(token, safe="")}
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * pad + raw).decode("ascii")
            head = (pad * 8 + 5) // 6  # characters that mix in the bytes before the token
            tail = ((pad + len(raw)) * 8) // 6  # the characters made only of the token's bits end here
            forms.add(encoded[head:tail])
            if not pad:
                forms.add(encoded.rstrip("="))  # the token alone encoded, without its padding
    return sorted({form.lower() for form in forms if form})


def redirect_target(response) -> str:
    """The origin (scheme://host[:port]) a redirect points to; never its path or query, which may carry secrets."""
    from urllib.parse import urljoin, urlsplit

    location = response.headers.get("location") or ""
    try:
        target = urlsplit(urljoin(str(response.url), location))
        host = target.hostname or "?"
        port = f":{target.port}" if target.port else ""
    except ValueError:
        return "an unreadable location"
    return f"{target.scheme or '?'}://{host}{port}"


def redirect_failure(response) -> Failure:
    """A 3xx answer: reported as a redirect with the target's origin, never followed (the token stays here)."""
    status = response.status_code
    return Failure(
        f"redirected (HTTP {status}) to {redirect_target(response)}; redirects are not followed, so the token "
        "is not sent elsewhere. Fix: set source.url to the final address",
        "redirect",
        retry=False,
        status=status,
    )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now_dt = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return max(0.0, (when - now_dt).total_seconds())


def open_client(timeout_s: float, concurrency: int):
    """One ``httpx.Client`` shared by the request threads, with a connection per thread."""
    import httpx

    return httpx.Client(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        follow_redirects=False,
    )


def http_failure(response, body: str, redactor: Redactor) -> Failure:
    """The failure an HTTP error answer stands for: retryable or not, how long the server asks us to wait."""
    status = response.status_code
    wait = parse_retry_after(response.headers.get("retry-after"))
    loading = False
    message = None
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        if isinstance(error, str):
            message = error
        if status == 503 and isinstance(data.get("estimated_time"), (int, float)):
            loading = True
            wait = float(data["estimated_time"]) if wait is None else wait
    detail = redactor.excerpt(message) if message else redactor.excerpt(body) if body.strip() else None
    return Failure(
        f"HTTP {status}",
        "http",
        retry=status in RETRYABLE_STATUS,
        wait_s=wait,
        loading=loading,
        status=status,
        detail=detail,
    )


@contextlib.contextmanager
def transport_errors(redactor: Redactor) -> Iterator[None]:
    """Turn ``httpx``'s timeouts and connection errors into retryable failures."""
    import httpx

    try:
        yield
    except httpx.TimeoutException:
        raise Failure("timeout", "timeout", retry=True) from None
    except httpx.TransportError as exc:
        reason = f"connection failed ({type(exc).__name__}: {redactor.scrub(str(exc))[:120]})"
        raise Failure(reason, "connection", retry=True) from None


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    timeout_s: float  # the client's timeout, named in the final error
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_cap_s: float = 60.0
    loading_wait_max_s: float = 300.0


@dataclass
class Outcome(Generic[T]):
    """How a request ended after its retries: a value, or the error to record."""

    value: T | None
    error: str | None
    attempts: int
    attempt_s: float = 0.0  # the successful attempt alone
    loading_waited_s: float = 0.0


def final_reason(failure: Failure, retries: int, timeout_s: float) -> str:
    after = f"after {retries} {'retry' if retries == 1 else 'retries'}" if retries else "(no retry)"
    if failure.kind == "timeout":
        reason = f"timeout after {timeout_s:g} s {after}"
    elif failure.retry:
        reason = f"{failure.reason} {after}"
    else:
        reason = failure.reason
    return f"{reason}: {failure.detail}" if failure.detail else reason


class _Schedule:
    """The retry decisions for one request: asked once per failed attempt, it says whether to go on (and
    leaves the wait in ``next_wait``) or gives up (and leaves the reason in ``error``)."""

    def __init__(self, policy: RetryPolicy):
        self.policy = policy
        self.retries = 0
        self.loading_waited = 0.0
        self.loading_waits = 0
        self.next_wait = 0.0
        self.error: str | None = None

    def again(self, exc: BaseException) -> bool:
        if not isinstance(exc, Failure):
            return False  # a bug, not a failed request: let it through
        policy = self.policy
        if exc.loading and self.loading_waits < MAX_LOADING_WAITS:
            wait = min(exc.wait_s if exc.wait_s is not None else policy.backoff_base_s, policy.retry_after_cap_s)
            if self.loading_waited + wait <= policy.loading_wait_max_s:
                self.loading_waited += wait
                self.loading_waits += 1
                self.next_wait = wait
                return True
            self.error = f"model still loading after {self.loading_waited:.0f} s of waiting"
            return False
        if not exc.retry or self.retries >= policy.max_retries:
            self.error = final_reason(exc, self.retries, policy.timeout_s)
            return False
        self.retries += 1
        if exc.wait_s is not None:
            self.next_wait = min(exc.wait_s, policy.retry_after_cap_s)
        else:
            # exponential backoff with jitter (half fixed, half random, so retries never bunch up at ~0)
            delay = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (self.retries - 1))
            self.next_wait = delay * (0.5 + 0.5 * random.random())
        return True


def with_retries(attempt: Callable[[], T], policy: RetryPolicy, sleep: Callable[[float], None]) -> Outcome[T]:
    """Call ``attempt`` until it returns, or until :class:`_Schedule` gives up on its :class:`Failure`.

    Every wait goes through ``sleep``. Exceptions other than :class:`Failure` propagate.
    """
    schedule = _Schedule(policy)
    attempts = 0
    attempt_s = 0.0

    def timed() -> T:
        nonlocal attempts, attempt_s
        attempts += 1
        start = time.perf_counter()
        value = attempt()
        attempt_s = time.perf_counter() - start
        return value

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(schedule.again),
        wait=lambda _state: schedule.next_wait,
        stop=tenacity.stop_never,
        sleep=sleep,
        reraise=True,
    )
    try:
        value = retrying(timed)
    except Failure:
        return Outcome(None, schedule.error, attempts, loading_waited_s=schedule.loading_waited)
    return Outcome(value, None, attempts, attempt_s, schedule.loading_waited)
