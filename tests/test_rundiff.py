"""stats.rundiff on hand-made store frames: which runs are compared, and speed compared like with like."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from reportgen.stats.rundiff import UnknownRun, run_diff
from reportgen.study.prompts import Prompt, PromptSet

PROMPTS = PromptSet(prompts=[Prompt(id="p", prompt="Hi", reference="1")])
EMPTY = pd.DataFrame(columns=["fingerprint", "model_id", "prompt_id"])


MIB = 2**20


def model_run(run_id: str, fingerprint: str, started: float, *, load=1.0, tokens=100, seconds=2.0, prompts_run=4):
    return {
        "run_id": run_id,
        "model_id": "m",
        "fingerprint": fingerprint,
        "started_at": started,
        "load_time_s": load,
        "peak_memory_bytes": 1000 * MIB,
        "weight_bytes": 500,
        "generated_tokens": tokens,
        "generate_time_s": seconds,
        "prompts_run": prompts_run,
    }


def passes(run_id: str, seconds: float) -> dict:
    return {"run_id": run_id, "model_id": "m", "fingerprint": "f1", "seconds": seconds, "generated_tokens": 100}


def speed(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{**r, "latencies": json.dumps([0.1, 0.2])} for r in rows])


def test_latest_run_against_the_one_before_and_against_by_id_or_fingerprint():
    runs = pd.DataFrame(
        [
            model_run("r1", "f0", 1.0),
            model_run("r2", "f1", 2.0, load=2.0),
            model_run("r3", "f1", 3.0, load=math.nan, prompts_run=0),  # did nothing: not a run of the model
            model_run("r4", "f1", 4.0, load=4.0, seconds=1.0),
        ]
    )
    d = run_diff(EMPTY, runs, None, PROMPTS, "m")
    assert (d.old.run_id, d.new.run_id) == ("r2", "r4") and d.same_weights and "same_weights" in d.notes
    rows = d.speed.set_index("measure")
    assert rows.loc["load_time_s", "change"] == 2.0 and rows.loc["load_time_s", "improved"] is False
    assert rows.loc["tokens_per_s", "old"] == 50 and rows.loc["tokens_per_s", "new"] == 100
    # the answer runs' own throughput depends on their answers: shown, never judged without timed passes
    assert rows.loc["tokens_per_s", "ratio"] == 2 and rows.loc["tokens_per_s", "improved"] is None
    assert rows.loc["peak_memory_bytes", "improved"] is None  # unchanged
    assert d.worse == ["load_time_s"]
    assert run_diff(EMPTY, runs, None, PROMPTS, "m", against="r1").old.run_id == "r1"
    assert run_diff(EMPTY, runs, None, PROMPTS, "m", against="f0").old.fingerprint == "f0"
    with pytest.raises(UnknownRun, match="r1"):
        run_diff(EMPTY, runs, None, PROMPTS, "m", against="zz")
    assert run_diff(EMPTY, runs.iloc[:1], None, PROMPTS, "m") is None


def test_speed_from_timed_passes_only_when_both_runs_have_them():
    runs = pd.DataFrame([model_run("r1", "f1", 1.0), model_run("r2", "f1", 2.0)])
    one_side = run_diff(EMPTY, runs, speed(passes("r2", 0.5)), PROMPTS, "m").speed.set_index("measure")
    assert one_side.loc["tokens_per_s", "source"] == "run" and one_side.loc["tokens_per_s", "new"] == 50
    assert "latency_p50_s" not in one_side.index
    both = run_diff(EMPTY, runs, speed(passes("r1", 1.0), passes("r2", 0.5)), PROMPTS, "m").speed.set_index("measure")
    assert both.loc["tokens_per_s", "source"] == "passes"
    assert (both.loc["tokens_per_s", "old"], both.loc["tokens_per_s", "new"]) == (100, 200)
    assert both.loc["latency_p50_s", "change"] == pytest.approx(0.0)


def test_speed_and_memory_changes_count_only_beyond_the_noise():
    """Ranges of timed passes that overlap, or memory and load within NOISE_THRESHOLDS or NOISE_FLOORS, are no
    change; apart, they are."""
    runs = pd.DataFrame([model_run("r1", "f1", 1.0, load=1.0), model_run("r2", "f1", 2.0, load=1.1)])
    runs.loc[1, "peak_memory_bytes"] = 1050 * MIB  # +5%: inside the 10% threshold
    close = speed(passes("r1", 1.0), passes("r1", 1.1), passes("r2", 1.05), passes("r2", 0.95))
    rows = run_diff(EMPTY, runs, close, PROMPTS, "m").speed.set_index("measure")
    assert rows.loc["tokens_per_s", "source"] == "passes" and rows.loc["tokens_per_s", "improved"] is None
    assert rows.loc["peak_memory_bytes", "improved"] is None and rows.loc["load_time_s", "improved"] is None
    runs.loc[1, "peak_memory_bytes"] = 1200 * MIB  # +20%
    runs.loc[1, "load_time_s"] = 1.6  # +60%, 0.6 s: beyond both the 25% threshold and the 0.5 s floor
    apart = speed(passes("r1", 1.0), passes("r1", 1.1), passes("r2", 0.5), passes("r2", 0.55))
    rows = run_diff(EMPTY, runs, apart, PROMPTS, "m").speed.set_index("measure")
    assert rows.loc["tokens_per_s", "improved"] is True and rows.loc["peak_memory_bytes", "improved"] is False
    assert rows.loc["load_time_s", "improved"] is False
    # a tiny model: +50% that is a few MiB and a few hundredths of a second is still noise (the A/A study's case)
    runs.loc[:, "peak_memory_bytes"] = [8 * MIB, 12 * MIB]
    runs.loc[:, "load_time_s"] = [0.110, 0.160]
    rows = run_diff(EMPTY, runs, close, PROMPTS, "m").speed.set_index("measure")
    assert rows.loc["peak_memory_bytes", "improved"] is None and rows.loc["load_time_s", "improved"] is None


def test_a_speed_change_timed_on_a_busy_machine_is_no_change():
    """Ranges apart, but other processes used 30% of the CPU while the new run was timed: no change claimed."""
    runs = pd.DataFrame([model_run("r1", "f1", 1.0), model_run("r2", "f1", 2.0)])
    busy = [
        {**p, "others_cpu_share": 0.30 if p["run_id"] == "r2" else 0.01}
        for p in (passes("r1", 1.0), passes("r1", 1.1), passes("r2", 0.5), passes("r2", 0.55))
    ]
    rows = run_diff(EMPTY, runs, speed(*busy), PROMPTS, "m").speed.set_index("measure")
    assert rows.loc["tokens_per_s", "source"] == "passes" and rows.loc["tokens_per_s", "improved"] is None
    quiet = [{**p, "others_cpu_share": 0.01} for p in busy]
    rows = run_diff(EMPTY, runs, speed(*quiet), PROMPTS, "m").speed.set_index("measure")
    assert rows.loc["tokens_per_s", "improved"] is True
