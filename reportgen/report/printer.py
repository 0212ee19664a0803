"""The PDF printer: WeasyPrint in a child process, started early and stopped for good on a timeout.

Importing WeasyPrint takes about half a second (its cffi bindings to Pango are parsed at import) and a
layout takes as long again, all on one core. A render starts the printer as soon as it knows a PDF is
wanted (``start_printer``), so that the child imports WeasyPrint on the second core while the parent
gathers the facts, draws the charts and renders the Markdown and HTML; the page is then handed over and
laid out. One printer serves every PDF a process renders, one page at a time.

The child is this module run as ``python -m reportgen.report.printer``: it imports WeasyPrint, says it is
ready, then answers each job (the HTML, the report folder, the files rendered but not yet written, the
page size) with the PDF's bytes, the URLs WeasyPrint asked for and those refused, and WeasyPrint's
warnings, which the parent logs as its own. Jobs and answers are length-prefixed pickles on the child's
stdin and stdout: both ends are this module, and nothing else writes to those pipes.

A layout that outlives ``output.pdf_timeout_s`` is stopped by killing the child, so its CPU and memory
are given back at once (a thread could only be abandoned); the next PDF starts a fresh printer.

WeasyPrint may fetch only what the report itself contains: files inside the report folder (served from
the files rendered in memory, else from disk) and ``data:`` URIs. Every other URL (``http:``, ``file:``
outside the folder…) is refused: untrusted text is escaped before it gets here, so an
``<img src=file:///etc/passwd>`` can only appear if escaping failed, and then it still fetches nothing.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from reportgen.errors import MissingExtraError, RenderError

__all__ = ["PrintResult", "ReportFolderFetcher", "print_pdf", "start_printer", "stop_printer"]

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0  # for the child to import WeasyPrint: far longer than it takes on any machine
_HEADER = struct.Struct("!Q")


@dataclass
class PrintResult:
    """What printing one page gave: the PDF, the URLs WeasyPrint asked for, and those refused."""

    pdf: bytes
    requested: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------- the child's side


class ReportFolderFetcher:
    """Builds WeasyPrint's url_fetcher for one report folder; records what was asked and refused."""

    def __init__(self, folder: Path, pending: Mapping[str, bytes] | None = None):
        self.folder = Path(folder).resolve()
        self.pending = dict(pending or {})
        self.requested: list[str] = []
        self.refused: list[str] = []

    def resolve(self, url: str) -> tuple[bytes, str] | None:
        """(data, mime type) for an allowed file URL; None when the URL is not allowed."""
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            return None
        path = Path(unquote(parts.path)).resolve()
        if self.folder != path and self.folder not in path.parents:
            return None
        relative = path.relative_to(self.folder).as_posix()
        mime = {
            "svg": "image/svg+xml",
            "png": "image/png",
            "jpg": "image/jpeg",
            "jpeg": "image/jpeg",
            "css": "text/css",
            "gif": "image/gif",
            "webp": "image/webp",
        }.get(path.suffix.lower().lstrip("."), "application/octet-stream")
        if relative in self.pending:
            return self.pending[relative], mime
        if path.is_file():
            return path.read_bytes(), mime
        return None

    def weasyprint_fetcher(self):
        """An instance of a weasyprint.urls.URLFetcher subclass (WeasyPrint ≥ 66), else a function."""
        owner = self
        try:
            from weasyprint.urls import URLFetcher, URLFetcherResponse
        except ImportError:  # pragma: no cover - old WeasyPrint: the function interface
            return self._function_fetcher()

        class Fetcher(URLFetcher):  # the installed WeasyPrint's class
            def fetch(self, url, headers=None):
                owner.requested.append(url)
                if url.startswith("data:"):
                    return super().fetch(url, headers)
                found = owner.resolve(url)
                if found is None:
                    owner.refused.append(url)
                    raise ValueError(f"reportgen: refused to fetch {url!r} (only files inside the report folder)")
                data, mime = found
                return URLFetcherResponse(url, data, {"Content-Type": mime})

        return Fetcher(allowed_protocols={"file", "data"}, timeout=1)

    def _function_fetcher(self):  # pragma: no cover - WeasyPrint < 66
        from weasyprint import default_url_fetcher

        def fetch(url, timeout=1, ssl_context=None):
            self.requested.append(url)
            if url.startswith("data:"):
                return default_url_fetcher(url)
            found = self.resolve(url)
            if found is None:
                self.refused.append(url)
                raise ValueError(f"reportgen: refused to fetch {url!r}")
            return {"string": found[0], "mime_type": found[1], "redirected_url": url}

        return fetch


def pdf_css(page_size: str) -> str:
    """WeasyPrint's own properties, kept out of report.css so that the HTML page is standard CSS (the Nu
    checker rejects ``bookmark-level``): the page size and the PDF's outline from h1–h3."""
    return (
        f"@page {{ size: {page_size} !important; }}\n"  # a user stylesheet: !important outranks report.css's A4
        "h1 { bookmark-level: 1; } h2 { bookmark-level: 2; } h3 { bookmark-level: 3; } h4, h5, h6 { bookmark-level: none; }\n"
    )


def lay_out(html: str, folder: Path, pending: Mapping[str, bytes] | None, page_size: str) -> PrintResult:
    """WeasyPrint prints ``html`` (relative URLs inside ``folder``, from ``pending`` first), tagged PDF/UA-1."""
    import weasyprint

    fetcher = ReportFolderFetcher(folder, pending)
    base_url = Path(folder).resolve().as_uri() + "/"
    document = weasyprint.HTML(string=html, base_url=base_url, url_fetcher=fetcher.weasyprint_fetcher())
    pdf = document.write_pdf(stylesheets=[weasyprint.CSS(string=pdf_css(page_size))], pdf_variant="pdf/ua-1")
    return PrintResult(pdf, fetcher.requested, fetcher.refused)


class _Warnings(logging.Handler):
    """Collects the child's warnings for the parent to log."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def _send(stream: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the other end closed the pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(stream: IO[bytes]) -> Any:
    (size,) = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
    return pickle.loads(_read_exactly(stream, size))


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The child: import WeasyPrint, say so, then print each job until the parent closes the pipe."""
    collected = _Warnings()
    logging.getLogger().addHandler(collected)
    logging.getLogger().setLevel(logging.WARNING)
    try:
        import weasyprint  # noqa: F401  (the half second this process exists to spend early)
    except ImportError as exc:
        _send(answers, {"missing": exc.name or "weasyprint"})
        return
    _send(answers, {"ready": True})
    while True:
        try:
            job = _receive(requests)
        except EOFError:
            return
        collected.records.clear()
        try:
            printed = lay_out(job["html"], Path(job["folder"]), job["pending"], job["page_size"])
            answer: dict[str, Any] = {"pdf": printed.pdf, "requested": printed.requested, "refused": printed.refused}
        except Exception as exc:  # WeasyPrint raises many kinds; all mean "this PDF could not be made"
            answer = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        answer["warnings"] = list(collected.records)
        _send(answers, answer)


# ------------------------------------------------------------------------------------ the parent's side


class _Printer:
    """One child process and the pipes to it."""

    def __init__(self) -> None:
        import reportgen

        package_root = str(Path(reportgen.__file__).resolve().parents[1])  # the child imports this very reportgen
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-m", "reportgen.report.printer"],  # -P: nothing from the working folder shadows a module
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self.ready = False

    def _wait_readable(self, seconds: float | None) -> bool:
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], seconds)
        return bool(readable)

    def wait_ready(self) -> None:
        if self.ready:
            return
        assert self.process.stdout is not None
        if not self._wait_readable(READY_TIMEOUT_S):
            raise RenderError(f"the PDF printer did not start within {READY_TIMEOUT_S:g} s (importing WeasyPrint)")
        try:
            hello = _receive(self.process.stdout)
        except EOFError:
            raise RenderError(f"the PDF printer stopped before it was ready (exit status {self.process.wait()})") from None
        if "missing" in hello:
            raise MissingExtraError(hello["missing"], "pdf", "Writing the PDF report")
        self.ready = True

    def print(self, job: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        """Send one job and wait for its answer; ``TimeoutError`` after ``timeout_s`` (the layout's time)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.wait_ready()
        try:
            _send(self.process.stdin, job)
        except BrokenPipeError:
            raise RenderError(f"the PDF printer stopped (exit status {self.process.wait()})") from None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if not self._wait_readable(None if deadline is None else max(0.0, deadline - time.monotonic())):
            raise TimeoutError
        try:
            answer: dict[str, Any] = _receive(self.process.stdout)
        except EOFError:
            raise RenderError(f"the PDF printer stopped while printing (exit status {self.process.wait()})") from None
        return answer

    def stop(self, *, kill: bool = False) -> None:
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            elif self.process.stdin is not None:
                self.process.stdin.close()  # the child's loop ends at the end of its input
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()


_lock = threading.Lock()  # one page at a time through the one printer
_printer: _Printer | None = None


def start_printer() -> None:
    """Start the printer process now (it imports WeasyPrint meanwhile), unless one is running."""
    global _printer
    if _printer is None or _printer.process.poll() is not None:
        _printer = _Printer()


def stop_printer(*, kill: bool = False) -> None:
    """Stop the printer process (``kill``: at once, e.g. mid-layout); the next PDF starts a new one."""
    global _printer
    if _printer is not None:
        _printer.stop(kill=kill)
        _printer = None


# At exit the printer is idle (a page is printed while its caller waits): stop it at once rather than wait
# for its interpreter to wind down (a fifth of a second with WeasyPrint loaded).
atexit.register(stop_printer, kill=True)


def print_pdf(
    html: str,
    folder: Path,
    pending: Mapping[str, bytes] | None = None,
    *,
    timeout_s: float | None = None,
    page_size: str = "A4",
) -> PrintResult:
    """Print ``html`` to PDF in the printer process (started here if ``start_printer`` was not called).

    Raises ``TimeoutError`` when the layout has not finished after ``timeout_s`` seconds (the child is
    killed), RenderError when WeasyPrint fails, MissingExtraError when it is not installed.
    """
    job = {"html": html, "folder": str(folder), "pending": dict(pending or {}), "page_size": page_size}
    with _lock:
        start_printer()
        assert _printer is not None
        try:
            answer = _printer.print(job, timeout_s)
        except BaseException:  # a timeout, a dead or missing printer, Ctrl-C: stop the layout, start afresh next time
            stop_printer(kill=True)
            raise
    for name, level, message in answer.get("warnings", []):
        logging.getLogger(name).log(level, "%s", message)
    if "error" in answer:
        raise RenderError(f"the PDF could not be rendered: {answer['error']}")
    return PrintResult(answer["pdf"], answer["requested"], answer["refused"])


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
