"""CPU specifics: how many threads to run on, and oneDNN packing of the float32 linears.

On a CPU the float32 ``nn.Linear`` layers run through oneDNN with weights packed once at load
(:func:`pack_linears`): 2-3x faster than PyTorch's default MKL path on decoding shapes (MKL repacks the
weight on every call and runs AVX2 code on AMD CPUs), at the cost of a second copy of the weights. Each
output row of these matmuls depends only on its own input row, so a prompt's greedy output is the same
bits whatever batch it runs in. The thread count (``model.threads``, else probed, see
:class:`ThreadChooser`) follows the machine's load: on a CPU shared with other busy processes one thread
can be 10x faster than all of them, because every multi-threaded op waits at a barrier for a thread the
scheduler parked.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from reportgen.backends.transformers.runtime import config_int, cuda_available, short


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bfloat16 arithmetic (AVX-512 BF16, AMX)


def native_bf16_flags() -> list[str]:
    """The native-bfloat16 flags this CPU reports (``[]``: bfloat16 would be emulated, or no /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    return [f for f in BF16_FLAGS if f in flags]
    except OSError:
        pass
    return []


def hidden_size(text_config: Any) -> int:
    """The model's hidden width (for probes shaped like its matmuls), 512 when the config does not say."""
    return config_int(text_config, ("hidden_size", "n_embd"), 512)


def probe_threads(hidden: int, candidates: list[int]) -> tuple[int, dict[int, float]]:
    """The thread count (of ``candidates``) that runs a decode-shaped matmul fastest right now.

    On a CPU shared with other busy processes, every parallel region of a multi-threaded op waits at its
    barrier for a thread the scheduler has parked, and small matmuls get 10-100x slower than on one
    thread. A few milliseconds of probing tell which count is faster on this machine at this moment.
    A candidate is abandoned as soon as it is clearly slower than the best so far.
    """
    import torch

    previous = torch.get_num_threads()
    x = torch.randn(32, hidden)
    w = torch.randn(hidden, hidden)
    timings: dict[int, float] = {}
    best_time = math.inf
    with torch.inference_mode():
        for n in sorted(candidates):  # one thread first: it sets the bar quickly
            torch.set_num_threads(n)
            torch.nn.functional.linear(x, w)  # wake the pool
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(4):
                    torch.nn.functional.linear(x, w)
                runs.append(time.perf_counter() - started)
                if runs[-1] > 3 * best_time:
                    break
            timings[n] = sorted(runs)[len(runs) // 2]
            best_time = min(best_time, timings[n])
    torch.set_num_threads(previous)
    # prefer more threads when they are about as fast (they help the large prefill matmuls)
    for n in sorted(candidates, reverse=True):
        if timings[n] <= best_time * 1.15:
            return n, timings
    return min(timings, key=timings.__getitem__), timings


class ThreadGovernor:
    """Picks the torch thread count for each forward pass from the measured times of the passes themselves.

    A shared machine's load comes and goes within seconds and a probe of a few milliseconds can miss it,
    so the steps are the measurement. Each decoding step's time, normalised by its batch size (a CPU step
    costs about one read of the weights plus a little per row), feeds a running average per thread count.
    The fastest count is used; another is tried now and then, less and less often while it keeps losing
    (a crowded machine can make the wrong count 10x slower, so exploring is not free), and at once when the
    current count suddenly gets much slower. The results do not depend on the thread count.
    """

    ROW_EQUIVALENT_OF_FIXED_COST = 16  # the weight read of a step costs about as much as this many rows
    FIRST_INTERVAL, MAX_INTERVAL = 8, 512

    def __init__(self, candidates: list[int], probe=None):
        self.candidates = candidates
        self.probe = probe  # probe([a, b]) -> {threads: seconds}: a cheap look before a costly exploration
        self.cost: dict[int, float] = {}
        self.interval = self.FIRST_INTERVAL
        self.countdown = 1  # try the other counts early (unless the probe already rules them out)
        self.exploring: int | None = None
        self.surprised = False

    def best(self) -> int:
        return min(self.cost, key=self.cost.__getitem__) if self.cost else self.candidates[0]

    def choose(self) -> int:
        untried = [n for n in self.candidates if n not in self.cost]
        if not self.cost:
            self.exploring = None
            return self.candidates[0]
        self.countdown -= 1
        if untried and (self.countdown <= 0 or self.surprised):
            self.exploring = untried[0]
        elif self.countdown <= 0 or self.surprised:
            others = [n for n in self.candidates if n != self.best()]
            self.exploring = min(others, key=self.cost.__getitem__) if others else None
        else:
            self.exploring = None
        if self.exploring is not None:
            self.countdown = self.interval
            self.surprised = False
            if self.probe is not None:
                timings = self.probe([self.best(), self.exploring])
                if timings[self.exploring] > 1.5 * timings[self.best()]:  # clearly worse right now: skip
                    self.exploring = None
                    self.interval = min(self.interval * 2, self.MAX_INTERVAL)
                    self.countdown = self.interval
                    return self.best()
            return self.exploring
        return self.best()

    def record(self, threads: int, seconds: float, rows: int) -> None:
        cost = seconds / (rows + self.ROW_EQUIVALENT_OF_FIXED_COST)
        leader = self.best() if self.cost else None
        previous = self.cost.get(threads)
        if previous is None or threads == self.exploring:  # an explored count's old figure is stale
            self.cost[threads] = cost
        else:
            self.cost[threads] = 0.5 * previous + 0.5 * cost
        if self.exploring is not None and leader is not None and self.exploring != leader:
            if self.best() == self.exploring:  # it won: keep exploring at the usual pace
                self.interval = self.FIRST_INTERVAL
            else:  # it lost: look again later, each time later
                self.interval = min(self.interval * 2, self.MAX_INTERVAL)
            self.countdown = self.interval
        elif previous is not None and threads == leader and cost > 3.0 * previous:
            self.surprised = True


class ThreadChooser:
    """The torch thread count of one backend: ``fixed`` (``model.threads``) when set; else the usable CPUs,
    or fewer when a probe shows other work crowding them.

    The probe (a few ms) runs again when the last one is older than RECHECK_S, since the load of a shared
    machine comes and goes; during decoding the step times themselves decide (:meth:`governor`). The thread
    count does not change the results here (row-independent matmuls: the same bits on 1 or N threads;
    checked for oneDNN and SDPA on x86). ``hidden`` is the loaded model's width (probes are shaped like it).
    """

    RECHECK_S = 2.0
    DEFAULT_HIDDEN = 512

    def __init__(self, fixed: int | None):
        self.fixed = fixed
        self.hidden = self.DEFAULT_HIDDEN
        self.chosen: int | None = None
        self.checked = 0.0
        self.probe: dict[int, float] = {}  # the last probe's seconds per thread count
        self._governor: ThreadGovernor | None = None

    def threads(self, recheck: bool = True) -> int:
        if self.fixed:
            return self.fixed
        cpus = usable_cpus()
        if cpus == 1 or cuda_available():
            return cpus
        now = time.monotonic()
        if self.chosen is None or (recheck and now - self.checked > self.RECHECK_S):
            candidates = sorted({cpus, max(1, cpus // 2), 1}, reverse=True)
            self.chosen, self.probe = probe_threads(min(self.hidden, 2048), candidates)
            self.checked = time.monotonic()
        return self.chosen

    def governor(self) -> ThreadGovernor | None:
        """The per-step thread chooser for decoding (None when the thread count is fixed)."""
        if self.fixed or cuda_available() or usable_cpus() == 1:
            return None
        if self._governor is None:
            cpus = usable_cpus()
            first = self.threads(recheck=False)
            others = sorted({cpus, max(1, cpus // 2), 1} - {first}, reverse=True)
            hidden = min(2048, self.hidden)
            self._governor = ThreadGovernor([first, *others], probe=lambda candidates: probe_threads(hidden, candidates)[1])
        return self._governor

    def retune(self) -> None:
        """Before a forward pass outside the decoding loop: the best thread count known so far."""
        import torch

        governor = self.governor()
        wanted = governor.best() if governor is not None and governor.cost else self.threads()
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)

    def reset(self) -> None:
        """Forget the model (on close): the next one is probed afresh."""
        self.hidden = self.DEFAULT_HIDDEN
        self.chosen = None
        self._governor = None


def pack_linears(model, hidden: int, force: bool = False) -> tuple[int, str | None]:
    """Run float32 ``nn.Linear`` layers through oneDNN with prepacked weights, where that is faster.

    On x86 CPUs PyTorch's default float32 matmul (MKL) repacks the weight on every call and, on AMD CPUs,
    runs AVX2 code; oneDNN with a weight packed once runs 2-3x faster on the batch shapes of decoding, and
    each output row depends only on its own input row (the result does not change with the batch size).
    The packed copy costs one more copy of the weights. Returns (layers packed, reason when none).
    """
    import torch

    ops = getattr(torch.ops, "mkldnn", None)
    if ops is None or not torch.backends.mkldnn.is_available():
        return 0, "oneDNN is not available in this torch build"
    try:
        reorder, linear = torch.ops.mkldnn._reorder_linear_weight, torch.ops.mkldnn._linear_pointwise
        reason = _onednn_unfit(reorder, linear, hidden, force)
    except Exception as exc:  # noqa: BLE001 - op missing, unsupported CPU: run without packing
        return 0, f"oneDNN linear unavailable ({short(exc)})"
    if reason is not None:
        return 0, reason
    count = 0
    for module in model.modules():
        weight: torch.Tensor
        bias: torch.Tensor | None
        if type(module) is torch.nn.Linear:
            weight, bias = module.weight, module.bias
        elif type(module).__name__ == "Conv1D" and hasattr(module, "nf"):  # GPT-2's transposed linear
            weight, bias = module.weight.t(), module.bias
        else:
            continue
        if weight.dtype != torch.float32 or weight.device.type != "cpu" or weight.dim() != 2:
            continue
        packed = reorder(weight.detach().contiguous(), 32)
        bias = bias.detach() if bias is not None else None

        def forward(x, _packed=packed, _bias=bias):
            return linear(x, _packed, _bias, "none", [], "")

        module.forward = forward
        count += 1
    return count, None


def _onednn_unfit(reorder, linear, hidden: int, force: bool) -> str | None:
    """Why oneDNN should not run the linears here (wrong results, or not faster unless ``force``), or None."""
    import torch

    w = torch.randn(4 * hidden, hidden)
    x = torch.randn(32, hidden)
    packed = reorder(w, 32)
    ref = torch.nn.functional.linear(x, w)
    out = linear(x, packed, None, "none", [], "")
    if not torch.allclose(out, ref, rtol=1e-4, atol=1e-4):
        return "oneDNN linear disagrees with the reference"

    def best(fn) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return min(times)

    with torch.inference_mode():
        fast = best(lambda: linear(x, packed, None, "none", [], ""))
        slow = best(lambda: torch.nn.functional.linear(x, w))
    if fast > slow * 0.9 and not force:
        return f"oneDNN is not faster here ({fast * 1e3:.2f} ms vs {slow * 1e3:.2f} ms)"
    return None
