"""The headless Chromium that draws the static charts: one kaleido session on a thread of its own.

A render that must draw charts spends about a second starting Chromium and then a fraction of a second per
chart. On its own thread (with its own asyncio loop) the browser starts while the render still computes
(``start``: ``build`` calls it as soon as it knows the tables were not cached, so the charts will have
changed), and ``export`` draws the charts while the rest of the report renders; ``result()`` of the
future it returns waits for them. ``close`` (or leaving the ``with`` block) ends the browser.

The session is kaleido's own, unchanged: it reloads its page after every figure (about 0.2 s a chart), and
that is what keeps the SVGs byte-identical from render to render (a tab reused without the reload drew a
chart of the same size as an earlier one with its attributes in another order, now and then).

kaleido is imported on the browser's thread, when the browser starts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ChartBrowser", "Drawing"]

#: how long ``close`` waits for Chromium to exit before leaving it to choreographer's own clean-up
CLOSE_TIMEOUT_S = 30


class Drawing(Protocol):
    """One chart to draw (``charts.Chart`` is one): its name, the plotly figure, and the size of the SVG in px."""

    @property
    def name(self) -> str: ...
    @property
    def figure(self) -> Any: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


class ChartBrowser:
    """A kaleido session (one Chromium, one tab) on its own thread. ``browser_cls`` is choreographer's
    browser class kaleido starts (reportgen's adds the offline switches); ``plotlyjs`` the plotly.js file
    the page loads."""

    def __init__(self, browser_cls: type, plotlyjs: Path):
        self._browser_cls = browser_cls
        self._plotlyjs = plotlyjs
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: Future[Any] | None = None  # the open kaleido session (or why it could not open)

    @property
    def started(self) -> bool:
        return self._loop is not None

    def start(self) -> None:
        """Start Chromium in the background (once; later calls do nothing). A failure to start is raised
        by the first ``export``."""
        with self._lock:
            if self._loop is not None:
                return
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="reportgen-chart-browser", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
            self._session = asyncio.run_coroutine_threadsafe(self._open(), loop)

    def export(self, drawings: Sequence[Drawing]) -> Future[dict[str, bytes]]:
        """name → SVG bytes of each drawing, drawn one after another in the browser's tab (started if need be)."""
        self.start()
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(self._draw(list(drawings)), self._loop)

    def close(self) -> None:
        """End the browser and its thread (nothing when it never started)."""
        with self._lock:
            loop, thread, session = self._loop, self._thread, self._session
            self._loop = self._thread = self._session = None
        if loop is None or thread is None or session is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shut(session), loop).result(timeout=CLOSE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - a browser that never opened, or would not close: nothing to keep
            pass
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=CLOSE_TIMEOUT_S)
            if not thread.is_alive():
                loop.close()

    def __enter__(self) -> ChartBrowser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- on the browser's thread -------------------------------------------------------------------
    async def _open(self) -> Any:
        import kaleido

        session = kaleido.Kaleido(
            n=1, mathjax=False, plotlyjs=self._plotlyjs, browser_cls=self._browser_cls, enable_extensions=False
        )
        return await session.__aenter__()

    async def _draw(self, drawings: list[Drawing]) -> dict[str, bytes]:
        assert self._session is not None
        session = await asyncio.wrap_future(self._session)
        out = {}
        for drawing in drawings:
            opts = {"format": "svg", "width": drawing.width, "height": drawing.height}
            out[drawing.name] = await session.calc_fig(drawing.figure, opts=opts)
        return out

    @staticmethod
    async def _shut(session: Future[Any]) -> None:
        opened = await asyncio.wrap_future(session)
        await opened.__aexit__(None, None, None)
