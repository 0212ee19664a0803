"""The sandbox that runs model-written code: how each run ends, and hostile answers contained.

Every hostile answer below is a code answer whose tests would pass; the hostile part runs first. Each
must end as a failed item with its reason, in bounded time, with nothing outside the sandbox touched and
no process of it left behind.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from reportgen.code.extract import extract_code, program
from reportgen.code.sandbox import Limits, isolation, run_program

FAST = Limits(timeout_s=2.0)
TESTS = "def check(candidate):\n    assert candidate() == 1\n"


def hostile(body: str) -> str:
    """A program whose tests pass once ``body`` (run first) is done."""
    return program(f"{body}\n\ndef f():\n    return 1\n", TESTS, "f")


def leftover_processes() -> list[str]:
    """Processes of the sandbox's fresh uids (2,000,000 to 2,999,999), zombies included."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if 2_000_000 <= entry.stat().st_uid <= 2_999_999:
                    found.append(entry.name)
            except OSError:
                continue
    return found


needs_namespaces = pytest.mark.skipif(
    not isolation().namespaces, reason="this machine allows no user namespaces (network and /tmp isolation unavailable)"
)


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    deadline = time.monotonic() + 5
    while leftover_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftover_processes() == []


def test_a_correct_program_passes_and_its_output_is_kept():
    verdict = run_program(program("def f():\n    print('hi')\n    return 1\n", TESTS, "f"), FAST)
    assert (verdict.passed, verdict.reason, verdict.output) == (True, "passed", "hi\n")


def test_a_failed_assertion_names_its_line():
    verdict = run_program(program("def f():\n    return 2\n", TESTS, "f"), FAST)
    assert (verdict.passed, verdict.reason, verdict.detail) == (False, "assertion", "line 6: assert candidate() == 1")


def test_an_exception_is_an_error_and_sys_exit_is_no_pass():
    verdict = run_program(program("def f():\n    return 1 / 0\n", TESTS, "f"), FAST)
    assert (verdict.reason, verdict.detail) == ("error", "ZeroDivisionError: division by zero")
    verdict = run_program("import sys\nsys.exit(0)\n" + TESTS, FAST)
    assert (verdict.passed, verdict.reason, verdict.detail) == (False, "error", "SystemExit: 0")


def test_the_program_starts_in_an_empty_private_folder_as_nobody_with_a_clean_environment():
    body = "import os\nprint(sorted(os.environ))\nprint(sorted(os.listdir('.')))\nprint(os.getuid() != 0 or 'ns')\n"
    verdict = run_program(body, FAST)
    assert verdict.passed
    lines = verdict.output.splitlines()
    assert lines[0] == "['HOME', 'LANG', 'PATH']"
    assert lines[1] == "['program.py']"


def test_infinite_loop_times_out():
    started = time.monotonic()
    verdict = run_program(hostile("while True:\n    pass"), FAST)
    assert (verdict.passed, verdict.reason) == (False, "timeout")
    assert time.monotonic() - started < 20


def test_a_loop_stopped_by_its_cpu_limit_times_out_too():
    # The CPU limit can end a loop before the wall clock does (on a loaded machine, or a process that
    # uses more than one core); the namespace's first process ignores SIGXCPU, so the hard limit's
    # SIGKILL ends it and `unshare` exits with status 1. Lowering its own hard limit to the soft one (2 s of
    # CPU; the wall clock allows 2 s + 1) makes that certain.
    body = "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (2, 2))\nwhile True:\n    pass"
    verdict = run_program(hostile(body), FAST)
    assert (verdict.passed, verdict.reason, verdict.detail) == (False, "timeout", "used its 2 s of CPU time")
    assert verdict.seconds < 2.9  # the CPU limit ended it, not the wall clock


def test_a_program_ended_early_is_not_a_timeout():
    verdict = run_program("import os\nos._exit(3)\n" + TESTS, FAST)
    assert (verdict.reason, verdict.detail) == ("error", "exited with status 3 before its tests finished")


def test_fork_bomb_is_contained():
    started = time.monotonic()
    verdict = run_program(hostile("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"), FAST)
    assert (verdict.passed, verdict.reason) == (False, "timeout")
    assert time.monotonic() - started < 20


def test_the_process_limit_holds():
    body = (
        "import os, time\nn = 0\nfor i in range(100):\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(20)\n        os._exit(0)\n    n += 1\nprint(n, flush=True)\nassert n < 100, n\n"
    )
    verdict = run_program(body, Limits(timeout_s=5.0, processes=16))
    assert verdict.passed, verdict
    assert int(verdict.output.split()[0]) < 16


def test_memory_hog_fails_with_memory():
    # 256 MiB: filling memory is slow on some virtual machines (1 GiB took 5 s here)
    limits = Limits(timeout_s=10.0, memory_bytes=256 << 20)
    verdict = run_program(hostile("hog = []\nwhile True:\n    hog.append(bytearray(16 << 20))"), limits)
    assert (verdict.passed, verdict.reason) == (False, "memory")


def test_write_outside_the_working_folder_fails_and_touches_nothing(tmp_path):
    """A new file beside this test (a folder root owns), and an existing one it tries to overwrite."""
    target = Path(__file__).parent / f"escaped-{uuid.uuid4().hex}.txt"
    existing = Path(__file__).parent / f"kept-{uuid.uuid4().hex}.txt"
    existing.write_text("kept")
    try:
        for path in (target, existing):
            verdict = run_program(hostile(f"open({str(path)!r}, 'w').write('x')"), FAST)
            assert (verdict.passed, verdict.reason) == (False, "error")
            # refused (a folder root owns), or not even there: a checkout under /tmp is hidden by the sandbox's
            # private /tmp (CI clones into one)
            assert verdict.detail.startswith(("PermissionError", "FileNotFoundError")), verdict.detail
        assert not target.exists()
        assert existing.read_text() == "kept"
    finally:
        target.unlink(missing_ok=True)
        existing.unlink()


@needs_namespaces
def test_tmp_is_private():
    name = f"/tmp/reportgen-escape-{uuid.uuid4().hex}"
    verdict = run_program(
        hostile(
            f"open({name!r}, 'w').write('x')\nimport os\nassert sorted(os.listdir('/tmp')) == ['reportgen-escape-' + {name[-32:]!r}, 'work']"
        ),
        FAST,
    )
    assert verdict.passed, verdict
    assert not Path(name).exists()


@needs_namespaces
def test_the_private_tmp_cannot_be_unmounted():
    """Inside its namespaces the program is root there, but without a capability: it cannot unmount its
    private /tmp to reach the machine's."""
    body = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.umount2(b'/tmp', 2) == -1 and ctypes.get_errno() == 1, 'unmounted'\n"
        "assert libc.mount(b'none', b'/mnt', b'tmpfs', 0, None) == -1, 'mounted'\n"
        "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])"
    )
    verdict = run_program(body, FAST)
    assert verdict.passed, verdict
    assert verdict.output == "0000000000000000\n"
    assert isolation().drop_capabilities


def test_the_token_does_not_reach_the_program(monkeypatch):
    monkeypatch.setenv("REPORTGEN_TEST_TOKEN", "sk-secret-value")
    body = (
        "import os\nprint(os.environ.get('REPORTGEN_TEST_TOKEN'))\nassert os.environ['REPORTGEN_TEST_TOKEN'] == 'sk-secret-value'"
    )
    verdict = run_program(hostile(body), FAST)
    assert (verdict.passed, verdict.reason, verdict.output) == (False, "error", "None\n")
    assert verdict.detail == "KeyError: 'REPORTGEN_TEST_TOKEN'"


@needs_namespaces
def test_a_socket_reaches_nothing():
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server name)
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        body = f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/leak', timeout=1)"
        verdict = run_program(hostile(body), FAST)
    finally:
        server.shutdown()
        server.server_close()
    assert (verdict.passed, verdict.reason) == (False, "error")
    assert "Connection refused" in verdict.detail or "unreachable" in verdict.detail
    assert hits == []


def test_printing_a_gigabyte_stops_at_the_output_limit():
    started = time.monotonic()
    body = "import sys\nfor _ in range(1 << 20):\n    sys.stdout.write('x' * 1024)"
    verdict = run_program(hostile(body), FAST)
    assert (verdict.passed, verdict.reason) == (False, "output-limit")
    assert len(verdict.output) == FAST.output_chars
    assert time.monotonic() - started < 20


def test_the_environment_of_the_caller_is_unchanged():
    before = dict(os.environ)
    run_program(hostile("import os\nos.environ['X'] = '1'\nos.chdir('/')"), FAST)
    assert dict(os.environ) == before


@pytest.mark.parametrize(
    ("answer", "code", "how"),
    [
        ("Here:\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n", "fenced"),
        ("```\nx = 2\n```\n```py\ndef f():\n    return x\n```", "def f():\n    return x\n", "fenced"),
        ("def f():\n    return 1\n", "def f():\n    return 1\n", "bare"),
        ("    return 1\n", "def f():\n    return 1\n", "continuation"),
        ("```python\n    return 1\n```", "def f():\n    return 1\n", "fenced continuation"),
        ("```python\ndef f():\n    return 1\n", "def f():\n    return 1\n", "fenced"),
    ],
)
def test_extraction(answer, code, how):
    extracted = extract_code(answer, "f", "def f():\n")
    assert (extracted.code, extracted.how) == (code, how)


def test_extraction_keeps_the_context_imports():
    extracted = extract_code(
        "```python\ndef f(x: List[int]):\n    return 1\n```", "f", "from typing import List\n\n\ndef f(x):\n"
    )
    assert extracted.code == "from typing import List\n\ndef f(x: List[int]):\n    return 1\n"
