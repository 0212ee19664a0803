"""Run one program (an answer's code and its tests) in a sandbox, and say how it ended.

Each program runs in a fresh process tree:

- **limits** (``setrlimit``, set before anything of it starts): CPU time, address space (memory), the
  size of any file it writes (its captured output included), and the number of processes of its user;
  the parent enforces a wall-clock limit and then kills the whole tree;
- **user**: when reportgen runs as root (root ignores the process limit), the program runs as a fresh
  unprivileged uid (one per run, owning no file), so the process limit applies and nothing root owns is
  writable;
- **namespaces** (``unshare``, where the kernel allows user namespaces): no network (a network namespace
  with only a down loopback), its own process ids (when the run ends or is killed, every process it
  started dies with it), and its own mounts: empty private ``/tmp``, ``/var/tmp`` and ``/dev/shm``
  (size-limited tmpfs), with its working folder in that ``/tmp``; after mounting, every capability is
  dropped (``setpriv``), so it cannot unmount them;
- **environment** built from nothing: ``PATH``, ``HOME`` (its working folder) and ``LANG``; no variable
  of reportgen's environment (tokens named by ``token_env`` included) reaches it; Python runs isolated
  (``-I -S``: no site-packages, no ``PYTHON*`` variables).

Where a layer is not available (no ``unshare``, user namespaces disabled, not root), the program runs
with what is, and :class:`Isolation` says what was missing: the report prints it.

What it does not guarantee: a program written to fake its result (the verdict is reported by the same
process that runs the answer) or to exploit the kernel. It reads what its user may read on the machine.
"""

from __future__ import annotations

import json
import os
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

#: How each run ended: passed, or the reason it failed.
REASONS = ("passed", "assertion", "error", "timeout", "memory", "killed", "output-limit")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one run may use."""

    timeout_s: float = 10.0  # wall clock; CPU time is limited to the same number of seconds
    memory_bytes: int = 512 * MiB  # address space (RLIMIT_AS)
    file_bytes: int = 8 * MiB  # any file written, the captured output included (RLIMIT_FSIZE)
    processes: int = 16  # processes of its user at once (RLIMIT_NPROC)
    tmp_bytes: int = 32 * MiB  # each private tmpfs (/tmp, /var/tmp, /dev/shm)
    output_chars: int = 2000  # how much of the output is kept

    @property
    def cpu_seconds(self) -> int:
        """The CPU-time limit (whole seconds, as ``RLIMIT_CPU`` takes them)."""
        return max(1, int(self.timeout_s + 0.999))

    def with_timeout(self, timeout_s: float | None) -> "Limits":
        return self if timeout_s is None else Limits(**{**asdict(self), "timeout_s": float(timeout_s)})

    def key(self) -> dict[str, float | int]:
        """What can change a verdict (the stored runs are keyed by it)."""
        return {k: v for k, v in asdict(self).items() if k != "output_chars"}


@dataclass(frozen=True)
class Isolation:
    """Which layers the machine allowed (see the module docstring)."""

    namespaces: bool  # network, process ids and mounts of its own
    drop_capabilities: bool
    own_uid: bool  # ran as a fresh unprivileged uid (reportgen runs as root)

    @property
    def network(self) -> bool:
        return self.namespaces

    def describe(self) -> str:
        parts = [
            "no network (own network namespace)" if self.namespaces else "network isolation was NOT available",
            "own process-id namespace and private /tmp" if self.namespaces else "no process-id or mount namespace",
        ]
        if self.namespaces:
            parts.append("capabilities dropped" if self.drop_capabilities else "capabilities NOT dropped (no setpriv)")
        if self.own_uid:
            parts.append("a fresh unprivileged uid")
        return "; ".join(parts)


@dataclass(frozen=True)
class Verdict:
    """How one run ended: ``reason`` is 'passed' or why it failed; ``detail`` a line saying more."""

    passed: bool
    reason: str
    detail: str
    output: str
    seconds: float


# The code that runs inside the sandbox. Stage 1 (inside the namespaces, still privileged there): mount
# the private tmpfs folders, write the program into the working folder, drop every capability and exec
# stage 2, which runs the program and writes how it ended to the report pipe.
STAGE1 = r"""
import ctypes, json, os, sys
cfg = json.loads(sys.argv[1])
source = sys.stdin.buffer.read()
work = cfg["work"]
if cfg["mount"]:
    libc = ctypes.CDLL(None, use_errno=True)
    for target in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(target):
            options = ("size=%d,mode=1777" % cfg["tmp_bytes"]).encode()
            if libc.mount(b"none", target.encode(), b"tmpfs", 0, options) != 0:
                sys.exit("sandbox: cannot mount a private " + target)
    work = "/tmp/work"
    os.mkdir(work)
os.chdir(work)
with open("program.py", "wb") as f:
    f.write(source)
stage2 = [sys.executable, "-I", "-S", "-c", cfg["stage2"], sys.argv[2]]
if cfg["setpriv"]:
    stage2 = [cfg["setpriv"], *cfg["setpriv_flags"], *stage2]
os.execve(stage2[0], stage2, dict(os.environ, HOME=work))
"""

STAGE2 = r"""
import errno, json, os, sys, traceback
report = os.fdopen(int(sys.argv[1]), "w")
me = os.getpid()
def say(reason, detail=""):
    if os.getpid() != me:  # a process the program forked: only the first one reports
        os._exit(1)
    report.write(json.dumps({"reason": reason, "detail": detail[:500]}))
    report.flush()
def where(exc):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "program.py"]
    return "line %d: %s" % (frames[-1].lineno, (frames[-1].line or "").strip()) if frames else ""
try:
    with open("program.py") as f:
        source = f.read()
    exec(compile(source, "program.py", "exec"), {"__name__": "__main__"})
    sys.stdout.flush()
except AssertionError as exc:
    say("assertion", " ".join(x for x in (where(exc), str(exc)) if x))
except MemoryError as exc:
    say("memory", where(exc))
except RecursionError as exc:
    say("error", "RecursionError: " + where(exc))
except BaseException as exc:
    full = isinstance(exc, OSError) and exc.errno in (errno.EFBIG, errno.ENOSPC)
    say("output-limit" if full else "error", ("%s: %s" % (type(exc).__name__, exc))[:300])
else:
    say("passed")
for stream in (sys.stdout, sys.stderr):
    try:
        stream.flush()
    except BaseException:
        pass
os._exit(0)
"""


@lru_cache(maxsize=1)
def isolation() -> Isolation:
    """Which layers this machine allows: probe runs (the namespaces, then dropping capabilities inside
    them), cached for the process."""
    own_uid = os.geteuid() == 0
    unshare = shutil.which("unshare")
    setpriv = shutil.which("setpriv")
    python = [interpreter(), "-I", "-S", "-c", "pass"]
    namespaces = bool(unshare) and _probe([str(unshare), *_UNSHARE_FLAGS, *python], own_uid)
    dropping = (
        namespaces and bool(setpriv) and _probe([str(unshare), *_UNSHARE_FLAGS, str(setpriv), *SETPRIV_FLAGS, *python], own_uid)
    )
    return Isolation(namespaces=namespaces, drop_capabilities=dropping, own_uid=own_uid)


#: setpriv's arguments: no capability left, none regained by executing as the namespace's root.
SETPRIV_FLAGS = (
    "--bounding-set",
    "-all",
    "--inh-caps",
    "-all",
    "--securebits",
    "+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked",
)


def _probe(argv: list[str], own_uid: bool) -> bool:
    try:
        done = subprocess.run(
            argv,
            env={"PATH": SAFE_PATH},
            preexec_fn=_become(_fresh_uid() if own_uid else None, None),
            capture_output=True,
            timeout=30,
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _others_can_run(path: Path) -> bool:
    """Whether a user owning nothing may execute ``path`` (every folder above it searchable by others)."""
    try:
        path = path.resolve(strict=True)
        if path.stat().st_mode & 0o005 != 0o005:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in path.parents)
    except OSError:
        return False


@lru_cache(maxsize=1)
def interpreter() -> str:
    """The Python the program runs on: this one where an unprivileged user may run it, else the system's
    ``python3`` (the program needs the standard library only: it runs with ``-I -S``)."""
    if os.geteuid() != 0 or _others_can_run(Path(sys.executable)):
        return sys.executable
    for name in ("python3", "python"):
        found = shutil.which(name, path=SAFE_PATH)
        if found and _others_can_run(Path(found)):
            return found
    return sys.executable


_UNSHARE_FLAGS = ("--map-root-user", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc")


def _fresh_uid() -> int:
    """A uid no file and no other process has (one per run, so runs at once never share a process count)."""
    return random.randint(2_000_000, 2_999_999)


def _become(uid: int | None, limits: Limits | None) -> Callable[[], None]:
    """The child's first steps, before it executes anything: limits, then (as root) an unprivileged uid."""

    def preexec() -> None:
        if limits is not None:
            cpu = limits.cpu_seconds
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            processes = limits.processes if uid is not None else limits.processes + _own_processes()
            resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)

    return preexec


def _own_processes() -> int:
    """Processes of this user now (not root: the process limit counts them too)."""
    me = os.getuid()
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            count += entry.name.isdigit() and entry.stat().st_uid == me
        except OSError:
            continue
    return count


def run_program(source: str, limits: Limits = Limits()) -> Verdict:
    """Run ``source`` in the sandbox and say how it ended (never raises for anything the program does)."""
    iso = isolation()
    uid = _fresh_uid() if iso.own_uid else None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reportgen-sandbox-") as private:
        os.chmod(private, 0o711)  # the run's user may pass through (to its working folder), not list it
        work = Path(private) / "work"
        work.mkdir()
        if uid is not None:
            os.chown(work, uid, uid)
        os.chmod(work, 0o700)
        read_end, write_end = os.pipe()
        cfg = {
            "work": str(work),
            "mount": iso.namespaces,
            "tmp_bytes": limits.tmp_bytes,
            "setpriv": shutil.which("setpriv") if iso.drop_capabilities else None,
            "setpriv_flags": SETPRIV_FLAGS,
            "stage2": STAGE2,
        }
        argv = [interpreter(), "-I", "-S", "-c", STAGE1, json.dumps(cfg), str(write_end)]
        if iso.namespaces:
            argv = [shutil.which("unshare") or "unshare", *_UNSHARE_FLAGS, *argv]
        env = {"PATH": SAFE_PATH, "HOME": str(work), "LANG": "C.UTF-8"}
        with open(Path(private) / "output", "w+b") as output:
            timed_out = False
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd="/",
                    pass_fds=(write_end,),
                    preexec_fn=_become(uid, limits),
                    start_new_session=True,
                )
            except OSError as exc:
                os.close(read_end)
                os.close(write_end)
                return Verdict(False, "error", f"the sandbox could not start: {exc}", "", 0.0)
            os.close(write_end)
            _send(proc, source.encode())
            timed_out = not _ends_within(proc.pid, limits.timeout_s + 1.0)
            returncode, cpu_seconds = _end(proc)
            report = _read_report(read_end)
            seconds = time.monotonic() - started
            size = output.seek(0, os.SEEK_END)
            output.seek(0)
            text = _own_lines(output.read(limits.output_chars * 4).decode("utf-8", "replace"))[: limits.output_chars]
    ended = Ending(returncode, timed_out, size >= limits.file_bytes, cpu_seconds)
    return _verdict(report, ended, text, round(seconds, 3), limits)


def _send(proc: subprocess.Popen[bytes], source: bytes) -> None:
    """Give the program its source (stage 1 reads all of it first), then close its input."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(source)
        proc.stdin.close()
    except BrokenPipeError:  # it ended before reading: its verdict says why
        pass


def _has_ended(pid: int) -> bool:
    """Whether the process has ended, without reaping it (its resource usage is read when it is)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _ends_within(pid: int, seconds: float) -> bool:
    """Wait up to ``seconds`` for the process to end (a pidfd where the kernel has them); say if it did."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        deadline = time.monotonic() + seconds
        while not _has_ended(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True
    try:
        select.select([pidfd], [], [], seconds)
    finally:
        os.close(pidfd)
    return _has_ended(pid)


def _end(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """End what is left of the run, leaving no process and no zombie: first ``unshare``'s child (the
    namespace's first process: every other one in the namespace dies with it and is reaped by it), so
    that ``unshare`` reaps it and exits; then the process group (without namespaces, the whole run).
    Returns the exit status and the CPU seconds the run used (its reaped processes included): how a run
    stopped by its CPU limit is told apart, since ``unshare`` reports a child killed by ``SIGKILL`` as
    exit status 1."""
    if not _has_ended(proc.pid):
        for child in _children(proc.pid):
            _kill(lambda: os.kill(child, signal.SIGKILL))
        _ends_within(proc.pid, 5.0)
    _kill(lambda: os.killpg(proc.pid, signal.SIGKILL))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _kill(send: Callable[[], None]) -> None:
    try:
        send()
    except (ProcessLookupError, PermissionError):
        pass


def _own_lines(text: str) -> str:
    """The program's output without what ``unshare`` says when its child is killed."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("unshare: "))


def _read_report(fd: int) -> dict | None:
    chunks = []
    try:
        while select.select([fd], [], [], 2.0)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        report = json.loads(b"".join(chunks).decode("utf-8", "replace"))
    except ValueError:
        return None
    return report if isinstance(report, dict) and report.get("reason") in REASONS else None


@dataclass(frozen=True)
class Ending:
    """How the process tree ended, as the parent saw it."""

    returncode: int
    timed_out: bool  # still running at the wall-clock limit
    output_full: bool  # its output reached the file-size limit
    cpu_seconds: float  # CPU time it used, its reaped processes included


def _verdict(report: dict | None, ended: Ending, text: str, seconds: float, limits: Limits) -> Verdict:
    if ended.timed_out:
        return Verdict(False, "timeout", f"still running after {limits.timeout_s:g} s (wall clock)", text, seconds)
    returncode = ended.returncode
    if report is not None:
        reason = str(report["reason"])
        detail = str(report.get("detail", ""))
        if reason == "passed" and returncode != 0:
            return Verdict(False, "killed", f"exit status {returncode} after the tests passed", text, seconds)
        if reason == "error" and ended.output_full:
            reason = "output-limit"
        return Verdict(reason == "passed", reason, detail, text, seconds)
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if ended.cpu_seconds >= limits.cpu_seconds * 0.95 or (signum == signal.SIGXCPU):
        return Verdict(False, "timeout", f"used its {limits.cpu_seconds} s of CPU time", text, seconds)
    if signum == signal.SIGXFSZ or ended.output_full:
        return Verdict(False, "output-limit", f"wrote more than {limits.file_bytes // MiB} MiB", text, seconds)
    if signum:
        return Verdict(False, "killed", f"killed by {signal.Signals(signum).name}", text, seconds)
    return Verdict(False, "error", f"exited with status {returncode} before its tests finished", text, seconds)


def run_programs(programs: list[tuple[str, Limits]], workers: int = 2) -> list[Verdict]:
    """Run several programs, ``workers`` at once (each is its own process tree), in the given order."""
    from concurrent.futures import ThreadPoolExecutor

    if not programs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda item: run_program(*item), programs))
