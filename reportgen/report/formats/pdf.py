"""The "pdf" format, report.pdf: WeasyPrint prints an HTML variant of the report (static SVG charts, print CSS).

WeasyPrint may fetch only what the report itself contains: files inside the report folder (served
from the files rendered in memory, else from disk) and ``data:`` URIs. Every other URL (``http:``,
``file:`` outside the folder…) is refused: untrusted text is escaped before it gets here, so an
``<img src=file:///etc/passwd>`` can only appear if escaping failed, and then it still fetches nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from reportgen.errors import MissingExtraError, RenderError
from reportgen.report.formats import FORMATS, Format, FormatInput, FormatOutput

log = logging.getLogger(__name__)


def _fetcher_base():
    from weasyprint.urls import URLFetcher

    return URLFetcher


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
            base = _fetcher_base()
        except ImportError:  # pragma: no cover - old WeasyPrint: the function interface
            return self._function_fetcher()
        from weasyprint.urls import URLFetcherResponse

        class Fetcher(base):  # type: ignore[valid-type,misc]  # the installed WeasyPrint's class, known at run time
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


def render_pdf(
    html: str,
    folder: Path,
    pending: Mapping[str, bytes] | None = None,
    *,
    timeout_s: float | None = None,
    suspect: str = "",
) -> tuple[bytes, ReportFolderFetcher]:
    """Print ``html`` to PDF bytes; relative URLs resolve inside ``folder`` (from ``pending`` first).

    Watchdog: WeasyPrint runs in a daemon thread; when it has not finished after ``timeout_s`` seconds
    (``output.pdf_timeout_s``) the render stops with a RenderError naming the phase and ``suspect`` (the
    likely cause, e.g. the longest text field). The abandoned thread ends with the process.
    """
    try:
        import weasyprint
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingExtraError("weasyprint", "pdf", "Writing the PDF report") from exc
    fetcher = ReportFolderFetcher(folder, pending)
    base_url = Path(folder).resolve().as_uri() + "/"

    def layout() -> bytes:
        document = weasyprint.HTML(string=html, base_url=base_url, url_fetcher=fetcher.weasyprint_fetcher())
        return document.write_pdf()

    try:
        pdf = _with_watchdog(layout, timeout_s, suspect)
    except RenderError:
        raise
    except Exception as exc:  # WeasyPrint raises many kinds; all mean "this PDF could not be made"
        raise RenderError(f"the PDF could not be rendered: {type(exc).__name__}: {str(exc)[:300]}") from exc
    if fetcher.refused:
        log.warning(
            "the PDF asked for %d URL(s) outside the report folder; refused: %s",
            len(fetcher.refused),
            ", ".join(fetcher.refused[:5]),
        )
    return pdf, fetcher


def _with_watchdog(work, timeout_s: float | None, suspect: str) -> bytes:
    """``work()`` in a daemon thread, waited for at most ``timeout_s`` seconds (None: no limit)."""
    if timeout_s is None:
        return work()
    import threading

    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["pdf"] = work()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="reportgen-pdf-layout", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        likely = f"; the likely cause is {suspect}" if suspect else ""
        raise RenderError(
            f"the PDF phase (WeasyPrint layout and write_pdf) did not finish within {timeout_s:g} s (output.pdf_timeout_s)"
            f"{likely}. Fix: shorten that text, render without the PDF (--format html), or raise output.pdf_timeout_s"
        )
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["pdf"]  # type: ignore[return-value]


def longest_text(study) -> str:
    """Where the study's longest free text is (a model card field, a name, the title), and its length."""
    best: tuple[int, str] = (0, "")
    candidates = [("title", getattr(study, "title", None))]
    for index, model in enumerate(getattr(study, "models", ())):
        candidates.append((f"models[{index}].name", model.name))
        for name, value in model.card:
            values = value if isinstance(value, tuple) else (value,)
            for item in values:
                text = item if isinstance(item, str) else getattr(item, "title", None)  # a Link: its title
                candidates.append((f"models[{index}].card.{name}", text))
    for where, text in candidates:
        if isinstance(text, str) and len(text) > best[0]:
            best = (len(text), where)
    return f"{best[1]} ({best[0]:,} characters)" if best[1] else ""


class PdfFormat(Format):
    """report.pdf, printed from the HTML page of the "pdf" target (static SVG charts, print CSS)."""

    name = "pdf"
    file_name = "report.pdf"
    template_suffixes = (".md.j2", ".html.j2", ".css")

    def render(self, job: FormatInput) -> FormatOutput:
        from reportgen.report.formats.html import html_page
        from reportgen.report.markdown import markdown_to_html

        page = html_page(job.env, job.context.variables(), markdown_to_html(job.body))
        study = job.study
        timeout = study.output.pdf_timeout_s if study is not None else None
        suspect = longest_text(study) if study is not None else ""
        pdf, fetcher = render_pdf(page, job.folder, pending=job.pending, timeout_s=timeout, suspect=suspect)
        return FormatOutput({self.file_name: pdf}, fetcher.requested, fetcher.refused)


FORMATS.register(PdfFormat.name, PdfFormat())
