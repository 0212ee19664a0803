"""Speed measured like a benchmark (``measure``): warm-up batches, repeated timed passes stored in the
store, median and range in the efficiency table, per-prompt latency inside a batch, claims on ranges."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reportgen.analysis.claims import evaluate_check
from reportgen.backends.base import Backend
from reportgen.records import GenerationRequest
from reportgen.run import plan
from reportgen.run.measure import WARMUP_NEW_TOKENS, WARMUP_PROMPTS, warm_up
from reportgen.run.runner import run_study
from reportgen.stats.efficiency import efficiency_frame
from reportgen.store import Store, store_path
from reportgen.study.claims import parse_check
from reportgen.study.config import GenerationSettings, load_config


def write_study(folder: Path, measure: str, *, prompts: int = 6, batch_size: int = 3) -> Path:
    lines = ["prompts:"] + [
        f"  - {{id: p{i}, prompt: 'Count {' '.join(['up'] * (i + 1))} to {i}.', reference: '{i}'}}" for i in range(prompts)
    ]
    (folder / "prompts.yaml").write_text("\n".join(lines) + "\n")
    (folder / "study.yaml").write_text(
        f"""title: Speed protocol
prompts: prompts.yaml
generation: {{max_new_tokens: 6}}
measure: {measure}
output: {{dir: report}}
models:
  - id: llama
    name: Tiny Llama
    source: {{type: local, path: llama}}
    batch_size: {batch_size}
"""
    )
    return folder / "study.yaml"


@pytest.fixture
def folder(tmp_path: Path, tiny_llama_dir: Path) -> Path:
    shutil.copytree(tiny_llama_dir, tmp_path / "llama")
    return tmp_path


def frames(study):
    with Store(store_path(study)) as store:
        return store.results_frame(), store.model_runs_frame(), store.speed_frame()


def test_timed_passes_are_stored_and_reported_as_median_and_range(folder):
    study = load_config(write_study(folder, "{warmup: 1, repeats: 3, prompts: 4}"))
    run_study(study)
    results, model_runs, speed = frames(study)

    assert len(results) == 6  # the answers: every prompt once
    batched, single = speed[speed["regime"] == "batched"], speed[speed["regime"] == "single"]
    assert sorted(batched["pass_index"]) == sorted(single["pass_index"]) == [0, 1, 2] and set(speed["prompts"]) == {4}
    assert set(batched["batch_size"]) == {3} and set(single["batch_size"]) == {1}
    # the fixed workload: every prompt of every pass generates exactly max_new_tokens, end-of-sequence ignored
    assert set(speed["generated_tokens"]) == {4 * 6}
    rates = [t / s for t, s in zip(batched["generated_tokens"], batched["seconds"])]
    row = efficiency_frame(results, model_runs, speed=speed).iloc[0]
    assert row["throughput_source"] == "passes" and row["speed_passes"] == 3
    assert row["tokens_per_s"] == pytest.approx(statistics.median(rates))
    assert (row["tokens_per_s_low"], row["tokens_per_s_high"]) == pytest.approx((min(rates), max(rates)))
    streams = [t / s for t, s in zip(single["generated_tokens"], single["seconds"])]
    assert row["single_tokens_per_s"] == pytest.approx(statistics.median(streams))
    # latency per prompt is the single-stream regime's: one prompt at a time
    p50s = [statistics.median(json.loads(text)) for text in single["latencies"]]
    assert row["latency_p50_s"] == pytest.approx(statistics.median(p50s))
    assert row["latency_p50_s_low"] <= row["latency_p50_s"] <= row["latency_p50_s_high"]
    p95s = [np.percentile(json.loads(text), 95) for text in single["latencies"]]
    assert row["latency_p95_s"] == pytest.approx(statistics.median(p95s))  # from the same passes as p50
    ttfts = [v for text in single["ttfts"] for v in json.loads(text)]
    assert len(ttfts) == 3 * 4 and row["ttft_p50_s"] == pytest.approx(statistics.median(ttfts))


def test_a_new_protocol_measures_again_without_regenerating_the_answers(folder):
    run_study(load_config(write_study(folder, "{repeats: 2, prompts: 2}")))
    again = run_study(load_config(write_study(folder, "{repeats: 2, prompts: 2}")))
    assert again.run_id is None  # answers and passes stored: nothing to do

    study = load_config(write_study(folder, "{repeats: 3, prompts: 2}"))
    summary = run_study(study)
    (model,) = summary.models
    assert model.prompts_run == 0 and model.prompts_cached == 6
    assert "speed not yet measured" in model.reason
    _, _, speed = frames(study)
    assert speed.groupby("protocol_hash").size().sort_values().tolist() == [2 * 2, 3 * 2]  # passes × regimes
    results, model_runs, speed = frames(study)
    assert efficiency_frame(results, model_runs, speed=speed).iloc[0]["speed_passes"] == 3  # the latest protocol


def test_warm_up_runs_short_untimed_batches_first(folder, monkeypatch):
    log = folder / "batches.jsonl"  # the model runs in a worker process: it writes down what it generated
    real = plan.create_backend

    def counting(model, config_index=None):
        backend = real(model, config_index)
        generate = backend.generate

        def recorded(requests):
            with log.open("a") as handle:
                handle.write(json.dumps([[r.settings.max_new_tokens, r.settings.ignore_eos] for r in requests]) + "\n")
            return generate(requests)

        backend.generate = recorded
        return backend

    monkeypatch.setattr(plan, "create_backend", counting)
    run_study(load_config(write_study(folder, "{warmup: 2}")))
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    warm, memory, answers = calls[:2], calls[2], calls[3:]
    for batch in warm:
        assert len(batch) == min(WARMUP_PROMPTS, 6)
        assert {tokens for tokens, _ in batch} == {min(WARMUP_NEW_TOKENS, 6)}
    # then one batch of the fixed workload (peak memory is taken over it), before the answers
    assert memory == [[6, True]] * 3
    assert sum(len(b) for b in answers) == 6 and {(t, eos) for b in answers for t, eos in b} == {(6, False)}


class _Remote(Backend):
    name, local = "remote-test", False

    def fingerprint_parts(self):
        return {}

    def load(self):
        raise AssertionError

    def generate(self, requests):
        raise AssertionError("a server-side model gets no warm-up")


def test_no_warm_up_for_server_side_models():
    request = GenerationRequest("p", ({"role": "user", "content": "x"},), "x", "chat", GenerationSettings())
    warm_up(_Remote(None), [request], 3)  # would raise if it generated


def test_latency_of_a_batched_prompt_is_the_time_to_its_own_last_token(folder):
    study = load_config(write_study(folder, "{warmup: 0}", batch_size=6))
    run_study(study)
    results, model_runs, speed = frames(study)
    finish = [json.loads(e)["finish_s"] for e in results["extra"]]
    assert set(results["batch_size"]) == {6} and len(set(results["latency_s"])) == 1  # one batch, one wall time
    assert max(finish) <= results["latency_s"].iloc[0] + 1e-6
    row = efficiency_frame(results, model_runs, speed=speed).iloc[0]
    assert row["latency_p50_s"] == pytest.approx(float(np.percentile(finish, 50)))
    assert row["throughput_source"] == "run" and np.isnan(row["speed_passes"])


@pytest.mark.parametrize(
    ("a", "b", "holds"),
    [((100, 90, 110), (95, 80, 100), False), ((125, 120, 130), (95, 80, 100), True), ((100, None, None), (95, None, None), True)],
)
def test_speed_claims_compare_the_ranges_of_the_passes(a, b, holds):
    table = pd.DataFrame(
        [dict(zip(("tokens_per_s", "tokens_per_s_low", "tokens_per_s_high"), v)) for v in (a, b)], index=["a", "b"], dtype=float
    )
    passed, _, _ = evaluate_check(parse_check("a.tokens_per_s > b.tokens_per_s"), table)
    assert passed is holds
    reverse, _, _ = evaluate_check(parse_check("b.tokens_per_s < a.tokens_per_s"), table)
    assert reverse is holds


def test_metrics_prints_the_range_of_the_passes(folder):
    """``reportgen metrics`` through a pipe: throughput and p50 latency as ``median (lowest–highest)`` of the
    stored passes, and the number of passes."""
    import subprocess
    import sys

    from reportgen.stats.metrics import metric_value

    study = load_config(write_study(folder, "{warmup: 0, repeats: 3, prompts: 4}"))
    run_study(study)
    results, model_runs, speed = frames(study)
    batched = speed[speed["regime"] == "batched"]
    rates = [t / s for t, s in zip(batched["generated_tokens"], batched["seconds"])]
    done = subprocess.run(
        [sys.executable, "-m", "reportgen", "metrics", str(study.path)], capture_output=True, text=True, check=True
    )
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# Efficiency per model"))
    assert "median (lowest–highest)" in lines[start]
    header, row = lines[start + 1].split("\t"), lines[start + 2].split("\t")
    cells = dict(zip(header, row))
    expected = f"{metric_value('tokens_per_s', statistics.median(rates))} ({metric_value('tokens_per_s', min(rates))}–{metric_value('tokens_per_s', max(rates))})"
    assert cells["tokens_per_s"] == expected
    assert cells["speed_passes"] == "3"
    low, high = cells["latency_p50_s"].split("(")[1].rstrip(")").split("–")
    assert float(low) <= float(cells["latency_p50_s"].split()[0]) <= float(high)
