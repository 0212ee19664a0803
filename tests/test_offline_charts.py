"""Offline rendering: the Chromium that kaleido drives for the static charts gets ``OFFLINE_CHROMIUM_FLAGS``,
resolves no host name and connects nowhere; WeasyPrint reads nothing outside the report folder.

Chromium writes its own net log (``--log-net-log``), so the checks read what the browser did, not what
reportgen asked of it. A control run without the flags shows the same check catching DNS lookups.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from reportgen.report import charts

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")

#: net-log events that mean a host name went to a resolver (DNS or the system's getaddrinfo)
DNS_EVENTS = {
    "HOST_RESOLVER_MANAGER_JOB",
    "HOST_RESOLVER_MANAGER_CREATE_JOB",
    "HOST_RESOLVER_DNS_TASK",
    "HOST_RESOLVER_SYSTEM_TASK",
    "DNS_TRANSACTION",
    "DNS_TRANSACTION_QUERY",
}
LOCAL_SCHEMES = ("file:", "data:", "about:", "chrome:", "chrome-extension:", "devtools:", "blob:")
LOOPBACK = ("127.0.0.1", "[::1]", "localhost")
ERR_NAME_NOT_RESOLVED = -105
EXTERNAL_IMAGE = "https://reportgen-offline-check.invalid/logo.png"


def read_net_log(path: Path) -> dict:
    """What a Chromium net log says: DNS events, connect attempts, and each URL request with its outcome."""
    text = path.read_text()
    if not text.rstrip().endswith("}"):  # a browser killed mid-write leaves the event list open
        text = text.rstrip().rstrip(",") + "]}"
    log = json.loads(text)
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    dns, connects, requests = [], [], {}
    for event in log["events"]:
        kind, params = names.get(event["type"], "?"), event.get("params") or {}
        if kind in DNS_EVENTS:
            dns.append((kind, params.get("host") or params.get("hostname")))
        if kind == "TCP_CONNECT_ATTEMPT" and "address" in params:
            connects.append(params["address"])
        if kind == "URL_REQUEST_START_JOB":
            entry = requests.setdefault(event["source"]["id"], {"url": None, "type": None, "error": None})
            if "url" in params:
                entry["url"], entry["type"] = params["url"], params.get("request_type")
            if "net_error" in params:
                entry["error"] = params["net_error"]
    return {"dns": dns, "connects": connects, "requests": [r for r in requests.values() if r["url"]]}


def assert_offline(net: dict) -> None:
    assert net["dns"] == [], f"host names went to a resolver: {net['dns'][:10]}"
    assert all(address.startswith(LOOPBACK) for address in net["connects"]), net["connects"]
    for request in net["requests"]:
        url = request["url"]
        if url.startswith(LOCAL_SCHEMES) or url.split("//", 1)[-1].startswith(LOOPBACK):
            continue
        # Chromium's own background requests (on-demand component checks, the account list) and a URL in
        # a figure still start, but the resolver rule ends them before any lookup or connection
        assert request["error"] == ERR_NAME_NOT_RESOLVED, request


def chromium_command_lines(stop: threading.Event, seen: list[list[str]]) -> None:
    """Collect the command lines of the Chromium processes under this one (read from /proc), until ``stop``."""
    import psutil

    me = psutil.Process()
    while not stop.is_set():
        for child in me.children(recursive=True):
            try:
                cmdline = child.cmdline()
            except psutil.Error:
                continue
            if cmdline and "chromium" in Path(cmdline[0]).name and not any(a.startswith("--type=") for a in cmdline):
                if cmdline not in seen:
                    seen.append(cmdline)
        stop.wait(0.05)


@pytest.mark.browser
@needs_chromium
def test_chart_export_runs_chromium_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import plotly.graph_objects as go

    net_log = tmp_path / "net.json"
    monkeypatch.setattr(
        charts,
        "OFFLINE_CHROMIUM_FLAGS",
        charts.OFFLINE_CHROMIUM_FLAGS + (f"--log-net-log={net_log}", "--net-log-capture-mode=Everything"),
    )
    chart_set = charts.ChartSet()
    figure = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    # a figure that names an external image: plotly.js asks the browser for it while exporting
    figure.add_layout_image(source=EXTERNAL_IMAGE, x=0, y=1, sizex=0.2, sizey=0.2, xref="paper", yref="paper")
    chart_set.add("offline-check", figure, "Offline check")
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=chromium_command_lines, args=(stop, seen), daemon=True)
    watcher.start()
    try:
        with charts.new_chart_browser() as browser:  # the export itself, past the SVG caches
            svgs = chart_set._export(list(chart_set), browser).result()
    finally:
        stop.set()
        watcher.join(5)
    assert svgs["offline-check"].lstrip().startswith(b"<svg")

    assert seen, "no Chromium process was seen during the export"
    browser = next(c for c in seen if any(a.startswith("--remote-debugging-pipe") for a in c))
    for flag in charts.OFFLINE_CHROMIUM_FLAGS:
        assert flag in browser, f"{flag} is not on Chromium's command line: {browser}"
    assert "--disable-extensions" in browser and "about:blank" in browser, browser

    net = read_net_log(net_log)
    assert EXTERNAL_IMAGE in {r["url"] for r in net["requests"]}, "the net log holds none of the page's requests"
    assert_offline(net)


PAGE = """<!doctype html><html><body>
<img src="https://reportgen-offline-check.invalid/a.png">
<script src="http://reportgen-offline-check.invalid/x.js"></script>
<link rel="stylesheet" href="https://example.com/x.css"><p>offline</p></body></html>
"""


def run_chromium(tmp_path: Path, name: str, flags: tuple[str, ...]) -> dict:
    page = tmp_path / "page.html"
    page.write_text(PAGE)
    net_log = tmp_path / f"{name}.json"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / ('profile-' + name)}",
        f"--log-net-log={net_log}",
        "--net-log-capture-mode=Everything",
        *flags,
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert "offline" in done.stdout, done.stderr[-2000:]
    return read_net_log(net_log)


@pytest.mark.browser
@needs_chromium
def test_the_flags_stop_every_lookup_of_a_page_with_external_urls(tmp_path: Path):
    net = run_chromium(tmp_path, "offline", charts.OFFLINE_CHROMIUM_FLAGS)
    asked = {r["url"] for r in net["requests"]}
    assert {"https://reportgen-offline-check.invalid/a.png", "http://reportgen-offline-check.invalid/x.js"} <= asked
    assert net["dns"] == [] and all(a.startswith(LOOPBACK) for a in net["connects"])
    for request in net["requests"]:
        if "reportgen-offline-check" in request["url"] or "example.com" in request["url"]:
            assert request["error"] == ERR_NAME_NOT_RESOLVED, request

    control = run_chromium(tmp_path, "control", ())  # the same page without the flags: the check does catch lookups
    assert any(host and "reportgen-offline-check.invalid" in host for _, host in control["dns"]), control["dns"][:10]


def test_weasyprint_does_not_follow_a_symlink_out_of_the_folder(tmp_path: Path):
    from reportgen.report.formats.pdf import render_pdf

    secret = tmp_path / "outside.svg"
    secret.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "link.svg").symlink_to(secret)
    pdf, fetcher = render_pdf('<html><body><img src="link.svg"></body></html>', folder)
    assert pdf.startswith(b"%PDF")
    assert fetcher.refused == [(folder / "link.svg").resolve().as_uri()] or fetcher.refused == [
        folder.resolve().as_uri() + "/link.svg"
    ]
