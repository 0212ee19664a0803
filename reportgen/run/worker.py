"""A worker process per local model, so that no model pays (or is spared) the one-time costs of another.

In one process, the first model loaded pays for library initialisation, allocator growth and thread pools,
and every later one loads faster and adds less memory: load time and peak memory would depend on the
order of the models. ``run_in_worker`` forks a fresh child of the driver for one model instead; every
model starts from the same state. The fork keeps the driver's imported modules (and anything a test
registered or patched) and costs milliseconds; the ``ModelWork`` is inherited, not pickled.

The child never touches the store (the driver alone writes it, and its SQLite connection and writer lock
are only inherited, never used): each call the model makes on the sink, each progress update, log record
and line it prints becomes a message on a pipe, which the driver applies in order as it arrives, so each
batch is committed as soon as it is done. The child ends with its summary, or with the error it met,
and exits with ``os._exit`` (no finalizer runs there: none may close the driver's connection). The model
runs on a new thread of the child: GNU OpenMP hangs a fork's copy of a thread that used its pool. A child
that dies (a signal, the OOM killer) fails only its model; Ctrl-C stops the child and interrupts the run.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, cast

from reportgen.errors import ReportgenError
from reportgen.run.plan import ModelWork
from reportgen.run.sink import StoreSink
from reportgen.run.summary import ModelRunSummary

__all__ = ["WorkerCrash", "call_in_worker", "fork_is_safe", "run_in_worker"]

log = logging.getLogger(__name__)

# The sink's methods a model run calls (model_started, model_loaded, batch_done, ...: every public method but
# the driver's own); the driver calls them on the real sink with its own ModelWork.
_DRIVER_ONLY = {"begin", "record", "run_finished"}
SINK_CALLS = frozenset(
    name for name, value in vars(StoreSink).items() if callable(value) and not name.startswith("_") and name not in _DRIVER_ONLY
)
_STOP_S = 10.0  # how long a child that was told to stop (or has sent its result) gets before it is killed


class WorkerCrash(Exception):
    """An unexpected exception in a worker: its type and message, and the traceback there."""

    def __init__(self, message: str, trace: str):
        super().__init__(message)
        self.trace = trace


class _Channel:
    """The child's end of the pipe."""

    def __init__(self, connection: Connection):
        self.connection = connection

    def send(self, *message: Any) -> None:
        self.connection.send(message)


class _SinkProxy:
    """Stands in for the StoreSink in the child: every call is a message (the driver knows the ModelWork)."""

    def __init__(self, channel: _Channel):
        self._channel = channel

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name not in SINK_CALLS:
            raise AttributeError(f"a worker's sink has no {name}")

        def call(work: ModelWork, *args: Any) -> None:
            self._channel.send("sink", name, args)

        return call


class _ProgressProxy:
    """Stands in for the driver's progress display: tasks are numbered here and mapped there."""

    def __init__(self, channel: _Channel):
        self._channel = channel
        self._tasks = 0

    def add_task(self, description: str, total: int) -> int:
        self._tasks += 1
        self._channel.send("task", self._tasks, description, total)
        return self._tasks

    def advance(self, task: Any, advance: int) -> None:
        self._channel.send("advance", task, advance)


class _StreamProxy:
    """sys.stdout / sys.stderr in the child: what is printed there is printed by the driver (where a live
    progress display may be drawing: the child must not write to it behind its back)."""

    def __init__(self, channel: _Channel, name: str):
        self._channel, self.name = channel, name

    def write(self, text: str) -> int:
        if text:
            self._channel.send("print", self.name, text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a worker's output goes through the driver")

    @property
    def encoding(self) -> str:
        return "utf-8"


def _forward_logging(channel: _Channel) -> None:
    """Every record a logger of the child handles goes to the driver, which hands it to the same logger
    there: its handlers (and the -q / -v levels, inherited at the fork) decide as they would in-process."""

    def handle(self: logging.Logger, record: logging.LogRecord) -> None:
        if self.disabled or not self.filter(record):
            return
        fields = dict(record.__dict__, msg=record.getMessage(), args=None, exc_info=None)
        if record.exc_info and not record.exc_text:
            fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
        channel.send("log", {k: v for k, v in fields.items() if v is None or isinstance(v, (str, int, float))})

    logging.Logger.handle = handle  # type: ignore[method-assign]  # this process is the worker's alone


def _die_with(driver: int) -> None:
    """Ask Linux to kill this worker when the driver dies (``kill -9``), rather than load a model nobody waits
    for, holding the store's lock; elsewhere the worker ends at its next message (a broken pipe)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != driver:  # it died before that
        os._exit(1)


def _child(receive: Connection, send: Connection, call: Callable[[_Channel], Any], driver: int) -> None:
    """The worker: run ``call``, send its result or its error, and exit at once (``os._exit``)."""
    code = 0
    try:
        _die_with(driver)
        receive.close()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver too: it stops this child
        channel = _Channel(send)
        _forward_logging(channel)
        sys.stdout, sys.stderr = _StreamProxy(channel, "stdout"), _StreamProxy(channel, "stderr")
        failed: list[BaseException] = []
        # On a thread of its own: GNU OpenMP (torch's CPU thread pool) keeps its pool in the thread that made it,
        # and a forked copy of a thread whose pool the driver used waits forever for the pool's threads, which
        # were not copied. A new thread gets a new pool.
        thread = threading.Thread(target=_run, args=(call, channel, failed), name="reportgen-worker")
        thread.start()
        thread.join()
        code = 1 if failed else 0
    except BaseException:  # the driver is gone (a broken pipe) or could not be told: nothing more to do
        code = 1
    finally:
        os._exit(code)


def _run(call: Callable[[_Channel], Any], channel: _Channel, failed: list[BaseException]) -> None:
    try:
        try:
            result = call(channel)
        except ReportgenError as exc:
            channel.send("error", exc.format_message())
        except Exception as exc:  # becomes this model's error; the run goes on
            channel.send("crash", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            channel.send("done", result)
    except BaseException as exc:  # the driver is gone (a broken pipe) or could not be told
        failed.append(exc)


def fork_is_safe() -> bool:
    """Whether a forked child can still use the accelerator: not once CUDA is initialised in this process."""
    torch = sys.modules.get("torch")
    try:
        return torch is None or not torch.cuda.is_initialized()
    except AttributeError:  # a torch without CUDA support
        return True


class _Worker:
    def __init__(self, name: str, call: Callable[[_Channel], Any], handle: Callable[[tuple], None]):
        context = multiprocessing.get_context("fork")
        self.name, self._handle = name, handle
        self.receive, send = context.Pipe(duplex=False)
        self.process = context.Process(target=_child, args=(self.receive, send, call, os.getpid()), name=f"reportgen: {name}")
        self.process.start()
        send.close()  # the child holds the only writing end: its exit ends the pipe

    def result(self) -> tuple[str, Any]:
        """Apply the child's messages until it ends: ("done", result), ("error", message), ("crash", WorkerCrash)
        or ("died", why). Whatever interrupts this (Ctrl-C, a failing sink call) stops the child first."""
        try:
            outcome = self._serve()
        except BaseException:
            self._stop(wait_s=0)
            raise
        self._stop(wait_s=_STOP_S)
        return outcome

    def _serve(self) -> tuple[str, Any]:
        while True:
            ready = wait([self.receive, self.process.sentinel])
            if self.receive in ready:
                try:
                    message = self.receive.recv()
                except EOFError:
                    break
                kind = message[0]
                if kind in ("done", "error"):
                    return kind, message[1]
                if kind == "crash":
                    return kind, WorkerCrash(message[1], message[2])
                self._apply(message)
            elif not self.receive.poll():  # it exited, and everything it sent has been read
                break
        self.process.join()
        return "died", self._death()

    def _apply(self, message: tuple) -> None:
        kind = message[0]
        if kind == "log":
            record = logging.makeLogRecord(message[1])
            logging.getLogger(record.name).handle(record)
        elif kind == "print":
            stream = sys.stdout if message[1] == "stdout" else sys.stderr
            stream.write(message[2])
            stream.flush()
        else:
            self._handle(message)

    def _death(self) -> str:
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"worker process for {self.name} died (signal {-code})"
        return f"worker process for {self.name} exited with status {code} without a result"

    def _stop(self, wait_s: float) -> None:
        """Give a child that has finished ``wait_s`` to exit by itself, then stop it."""
        self.receive.close()
        process = self.process
        process.join(wait_s)
        if process.is_alive():
            process.terminate()
            process.join(_STOP_S)
        if process.is_alive():
            process.kill()
            process.join()
        process.close()


def run_in_worker(
    target: Callable[..., ModelRunSummary], work: ModelWork, sink: StoreSink, progress: Any | None
) -> ModelRunSummary:
    """``target(work, sink, progress)`` (``run_model``) in a forked child; its sink calls and progress
    updates are applied here, in order. A ReportgenError there, an unexpected exception or the child's
    death becomes the model's summary with ``error`` (the traceback of an unexpected one is logged at debug)."""
    tasks: dict[int, Any] = {}

    def handle(message: tuple) -> None:
        kind = message[0]
        if kind == "sink" and message[1] in SINK_CALLS:
            getattr(sink, message[1])(work, *message[2])
        elif kind == "task" and progress is not None:
            tasks[message[1]] = progress.add_task(message[2], total=message[3])
        elif kind == "advance" and progress is not None and message[1] in tasks:
            progress.advance(tasks[message[1]], message[2])

    def call(channel: _Channel) -> ModelRunSummary:
        proxy = _ProgressProxy(channel) if progress is not None else None
        return target(work, cast(StoreSink, _SinkProxy(channel)), proxy)

    kind, value = _Worker(f"model {work.model.id}", call, handle).result()
    if kind == "done":
        return cast(ModelRunSummary, value)
    if kind == "crash":
        log.debug("%s: worker traceback:\n%s", work.model.id, value.trace)
        value = str(value)
    return ModelRunSummary(work.model.id, "", work.total, error=value)


def call_in_worker(function: Callable[[], Any], name: str) -> Any:
    """``function()`` in a forked child, its result returned here (what it logs or prints too): for work
    that must not happen in the driver, such as initialising CUDA, which a later fork could not use."""
    kind, value = _Worker(name, lambda channel: function(), lambda message: None).result()
    if kind == "done":
        return value
    if kind == "crash":
        raise RuntimeError(str(value))
    raise RuntimeError(value)
