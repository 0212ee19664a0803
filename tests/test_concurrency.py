"""Concurrency by design: one writer per store (a second waits, never fails, never redoes the work), stale
runs marked interrupted, and a report switched in as one set even when its writer is killed."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fault_server import FaultServer
from reportgen.store import Store
from reportgen.util.atomic import recover, write_files

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def remote_study(folder: Path, url: str, prompts: int = 3) -> Path:
    (folder / "prompts.yaml").write_text(
        "prompts:\n" + "".join(f"  - {{id: p{i}, prompt: 'say words {i}', reference: '{i}'}}\n" for i in range(prompts))
    )
    path = folder / "study.yaml"
    path.write_text(
        f"title: t\nprompts: prompts.yaml\ngeneration: {{max_new_tokens: 4}}\noutput: {{dir: out}}\nmodels:\n"
        f'  - id: remote\n    name: Remote\n    source: {{type: http, url: "{url}", max_retries: 0, timeout_s: 10}}\n'
    )
    return path


def reportgen(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "reportgen", *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("rounds", [2, pytest.param(20, marks=pytest.mark.slow)])
def test_two_runs_at_once_on_a_fresh_store(tmp_path: Path, rounds: int):
    with FaultServer(delay_s=0.05) as server:
        for round_ in range(rounds):
            folder = tmp_path / f"r{round_}"
            folder.mkdir()
            study = remote_study(folder, server.hf_url)
            before = len(server.hits("say words"))
            first, second = reportgen("run", str(study)), reportgen("run", str(study))
            outs = [proc.communicate(timeout=120) for proc in (first, second)]
            for proc, (out, err) in zip((first, second), outs):
                assert proc.returncode == 0, f"round {round_}: exit {proc.returncode}\n{out}\n{err}"
                assert "move it aside" not in err and "locked" not in err, err
            assert len(server.hits("say words")) - before == 3, f"round {round_}: the work was done twice"
            with sqlite3.connect(folder / "out" / "results.sqlite") as db:
                assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 3
                statuses = [row[0] for row in db.execute("SELECT status FROM runs")]
            assert statuses == ["complete"], statuses  # the second run found everything stored: no run of its own


def test_second_writer_waits_and_says_who_holds_the_store(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    store = tmp_path / "results.sqlite"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from reportgen.store import Store
            with Store({str(store)!r}):
                print("ready", flush=True)
                time.sleep(1.5)
        """),
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        with Store(store) as opened:
            waited = time.perf_counter() - start
            assert opened.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    holder.wait(timeout=30)
    assert waited > 0.5
    assert f"another reportgen run is using this store (pid {holder.pid})" in caplog.text
    with Store(store), Store(store):  # re-entrant within one process (a build hands its store to the run)
        pass


def test_killed_run_is_marked_interrupted_on_next_open(tmp_path: Path):
    with FaultServer(delay_s=0.3) as server:
        study = remote_study(tmp_path, server.hf_url, prompts=40)
        proc = reportgen("run", str(study))
        deadline = time.monotonic() + 60
        while not server.hits("say words") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    path = tmp_path / "out" / "results.sqlite"
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT status FROM runs")] == ["running"]
    with Store(path, create=False):  # a reader changes nothing
        pass
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT status FROM runs")] == ["running"]
    with Store(path) as store:
        assert [r["status"] for r in store.db.execute("SELECT status FROM runs")] == ["interrupted"]
        assert store.db.execute("SELECT finished_at FROM runs").fetchone()[0] is not None


NAMES = ["README.md", "report.html", "report.pdf", "charts/a.svg", "charts/b.svg", "plotly.min.js"]

# A writer that SIGKILLs itself at a chosen point of ``write_files``: while writing its nth temporary file, or
# at its nth ``os.replace`` (the first replace puts the commit journal in place; the next six switch the files in).
CRASHING_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import reportgen.util.atomic as atomic
    from reportgen.util.atomic import write_files
    root, where, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    names = %r
    calls = {"temp": 0, "replace": 0}
    real_temp, real_replace = atomic._write_temp, os.replace

    def temp(path, payload):
        calls["temp"] += 1
        if where == "temp" and calls["temp"] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_temp(path, payload)

    def replace(src, dst):
        calls["replace"] += 1
        if where == "replace" and calls["replace"] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)

    atomic._write_temp, os.replace = temp, replace
    write_files(root, {name: b"N" * 100 + name.encode() for name in names})
"""
    % (NAMES,)
)


def _set_of(root: Path) -> list[str]:
    """The first byte of each report file: "O" for the old set, "N" for the new one."""
    return [(root / name).read_bytes()[:1].decode() for name in NAMES]


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".reportgen-commit"))


# (where the writer dies, at which call) -> the files switched in before it died
CRASH_POINTS = {
    ("temp", 1): 0,  # before any temporary file: nothing to clean
    ("temp", 4): 0,  # three temporary files written, no journal: the old set stays
    ("replace", 1): 0,  # every temporary file written, the journal not yet in place
    **{("replace", n): n - 2 for n in range(2, 8)},  # the journal in place, n - 2 of the six files switched in
}


@pytest.mark.parametrize("where, at", list(CRASH_POINTS), ids=[f"{w}-{n}" for w, n in CRASH_POINTS])
def test_kill_during_the_write_phase_leaves_one_complete_set(tmp_path: Path, where: str, at: int):
    """A writer killed at each point of the write phase: after ``recover`` (what the next render does first)
    the folder holds the whole old set (killed before its journal existed) or the whole new set (after), and
    nothing of the writer is left. Killed between two renames, the folder is a mixed set until then."""
    root = tmp_path / "report"
    write_files(root, {name: b"O" * 10 + name.encode() for name in NAMES})
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(root), where, str(at)], env=ENV, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    switched = CRASH_POINTS[(where, at)]
    journal_written = where == "replace" and at >= 2
    assert _set_of(root) == ["N"] * switched + ["O"] * (len(NAMES) - switched)
    journals = list(root.glob(".reportgen-commit.*.json"))
    assert len(journals) == (1 if journal_written else 0), _leftovers(root)
    temporaries = [p for p in root.rglob("*.tmp") if ".reportgen-commit." not in p.name]  # the report's, not the journal's
    expected_temporaries = len(NAMES) - switched if where == "replace" else at - 1
    assert len(temporaries) == expected_temporaries, _leftovers(root)

    recover(root)

    assert _set_of(root) == ["N" if journal_written else "O"] * len(NAMES)
    assert _leftovers(root) == []
    write_files(root, {"README.md": b"next"})  # and the next write works and leaves nothing behind
    assert (root / "README.md").read_bytes() == b"next" and _leftovers(root) == []


def test_interrupted_write_keeps_the_old_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import reportgen.util.atomic as atomic

    root = tmp_path / "r"
    write_files(root, {"a.txt": b"old", "b.txt": b"old"})
    real = atomic._write_temp
    calls = []

    def failing(path, payload):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, payload)

    monkeypatch.setattr(atomic, "_write_temp", failing)
    with pytest.raises(KeyboardInterrupt):
        write_files(root, {"a.txt": b"new", "b.txt": b"new"})
    assert (root / "a.txt").read_bytes() == b"old" and (root / "b.txt").read_bytes() == b"old"
    assert sorted(p.name for p in root.iterdir()) == ["a.txt", "b.txt"]


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path):
    root = tmp_path / "r"
    (root / "charts").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale = [root / f".README.md.{dead}.abc123xy.tmp", root / "charts" / f".a.svg.{dead}.q1w2e3r4.tmp"]
    live = root / f".README.md.{os.getpid()}.zzzzzzzz.tmp"  # a concurrent writer of ours: kept
    for path in [*stale, live]:
        path.write_bytes(b"x")
    write_files(root, {"README.md": b"new", "charts/a.svg": b"<svg/>"})
    assert not any(p.exists() for p in stale) and live.exists()
