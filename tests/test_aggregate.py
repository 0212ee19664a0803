"""Aggregation: bootstrap CIs, paired tests, per-prompt and summary frames, efficiency, LM, history.

Frames are built by hand or written through a real results store in a temp dir.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reportgen.stats import bootstrap as sb, efficiency as se, frames as sf, history as sh, lm as sl, tables as st
from reportgen.records import GenerationResult, LogLikelihoodResult
from reportgen.study.config import ModelConfig, Study
from reportgen.study.prompts import Prompt, PromptSet
from reportgen.store import Store

# ------------------------------------------------------------------------------------------------
# bootstrap_ci
# ------------------------------------------------------------------------------------------------


def test_constant_values_have_no_interval():
    for values in ([0.1] * 30, [1.0]):
        mean, low, high = sb.bootstrap_ci(values)
        assert mean == values[0] and math.isnan(low) and math.isnan(high)


def test_mean_interval_wilson_for_binary_bca_otherwise():
    hits = sf.mean_interval("exact_match", [1.0] * 7)  # 7 of 7: Wilson, not "1.00 [1.00, 1.00]"
    assert hits.method == "wilson" and hits.high == 1.0 and 0.6 < hits.low < 0.7
    lengths = sf.mean_interval("length_words", [3.0, 5.0, 9.0, 4.0])
    assert lengths.method == "BCa bootstrap" and lengths.low < lengths.estimate < lengths.high
    constant = sf.mean_interval("length_words", [4.0] * 5)
    assert not constant.estimable and constant.reason == "constant data"


def test_empty_and_nan_values():
    assert all(math.isnan(v) for v in sb.bootstrap_ci([]))
    assert all(math.isnan(v) for v in sb.bootstrap_ci([float("nan")]))
    mean, low, high = sb.bootstrap_ci([1.0, float("nan"), 3.0])
    assert mean == 2.0 and 1.0 <= low <= high <= 3.0


def test_bootstrap_is_vectorised_and_deterministic(monkeypatch):
    values = np.random.default_rng(1).normal(size=30)
    draws = []
    real_rng, real_integers = np.random.default_rng, np.random.Generator.integers

    class CountingGenerator:  # numpy's Generator, counting the resample index matrices it is asked for
        def __init__(self, seed):
            self._rng = real_rng(seed)

        def integers(self, low, high, size):
            draws.append(size)
            return real_integers(self._rng, low, high, size=size)

    monkeypatch.setattr(sb.np.random, "default_rng", CountingGenerator)
    first = sb.bootstrap_ci(values, n_boot=2000, seed=0)
    assert draws == [(2000, 30)]  # all 2000 resamples drawn as one matrix, not one call per resample
    monkeypatch.undo()
    assert sb.bootstrap_ci(values, n_boot=2000, seed=0) == first
    assert sb.bootstrap_ci(values, n_boot=2000, seed=1) != first
    assert first[0] == pytest.approx(values.mean())
    assert first[1] < first[0] < first[2]


def test_bootstrap_handles_large_samples_in_chunks():
    values = np.random.default_rng(2).normal(loc=5, size=20_000)  # 40M cells: built in chunks
    mean, low, high = sb.bootstrap_ci(values, n_boot=2000)
    assert low < 5 < high and high - low < 0.05


def test_ci_covers_true_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(42)
    covered = 0
    trials = 200
    for trial in range(trials):
        sample = rng.normal(loc=3.0, scale=2.0, size=30)
        _, low, high = sb.bootstrap_ci(sample, n_boot=1000, seed=trial)
        covered += low <= 3.0 <= high
    # percentile bootstrap at n=30 undercovers slightly; 95% nominal, binomial sd ~1.5%
    assert 0.87 <= covered / trials <= 0.99


def test_ci_width_shrinks_like_one_over_sqrt_n():
    rng = np.random.default_rng(7)
    small = [np.subtract(*sb.bootstrap_ci(rng.normal(size=100))[2:0:-1]) for _ in range(20)]
    large = [np.subtract(*sb.bootstrap_ci(rng.normal(size=400))[2:0:-1]) for _ in range(20)]
    assert np.mean(large) / np.mean(small) == pytest.approx(0.5, abs=0.08)


def test_ratio_ci():
    ratio, low, high = sb.bootstrap_ratio_ci([1.0, 3.0, 2.0, 4.0], [1.0, 1.0, 1.0, 1.0])
    assert ratio == 2.5 and low < 2.5 < high
    ratio, low, high = sb.bootstrap_ratio_ci([2.0], [4.0])
    assert ratio == 0.5 and math.isnan(low) and math.isnan(high)


# ------------------------------------------------------------------------------------------------
# paired tests
# ------------------------------------------------------------------------------------------------


def test_paired_constant_shift_is_significant():
    a = np.random.default_rng(0).uniform(size=30)
    test = sb.paired_bootstrap(a, a + 0.5)
    assert test["n"] == 30
    assert test["diff"] == pytest.approx(-0.5)
    assert test["ci_low"] == pytest.approx(-0.5) and test["ci_high"] == pytest.approx(-0.5)  # float noise only
    assert test["significant"] is True
    # sign-flip test, 9999 random patterns: none is as extreme as all 30 differences negative
    assert test["p_value"] == pytest.approx(2 / 10000)


def test_paired_binary_uses_mcnemar():
    a = np.array([1.0] * 12 + [0.0] * 8)
    b = np.array([0.0] * 10 + [1.0] * 2 + [0.0] * 8)  # 10 pairs a=1,b=0; none the other way
    test = sb.paired_bootstrap(a, b, binary=True)
    assert test["p_value"] == pytest.approx(2 / 2**10) and test["significant"] is True


def test_paired_noise_is_not_significant():
    rng = np.random.default_rng(123)
    a, b = rng.normal(size=40), rng.normal(size=40)
    test = sb.paired_bootstrap(a, b, seed=0)
    assert test["significant"] is False and test["p_value"] > 0.05
    assert test["ci_low"] < 0 < test["ci_high"]


def test_paired_false_positive_rate_is_near_nominal():
    rng = np.random.default_rng(5)
    hits = sum(
        sb.paired_bootstrap(rng.normal(size=30), rng.normal(size=30), n_boot=1000, seed=i)["significant"] for i in range(200)
    )
    assert hits / 200 <= 0.11


def test_paired_uses_only_pairs_both_answered_and_needs_two():
    test = sb.paired_bootstrap([1.0, np.nan, 3.0, 4.0], [0.0, 5.0, np.nan, 3.0])
    assert test["n"] == 2 and test["diff"] == 1.0 and test["mean_a"] == 2.5
    one = sb.paired_bootstrap([1.0], [0.0])
    assert one["diff"] == 1.0 and math.isnan(one["ci_low"]) and one["significant"] is False
    assert sb.paired_bootstrap([], [])["n"] == 0


def test_identical_outputs_are_not_significant():
    test = sb.paired_bootstrap([1.0, 0.0, 1.0], [1.0, 0.0, 1.0])
    assert test["diff"] == 0.0 and test["p_value"] == 1.0 and not test["significant"]


def test_holm():
    assert sb.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(sb.holm([float("nan"), 0.2])[0])


def _per_prompt_by_hand(scores: dict[str, list[float]], metric: str = "exact_match") -> pd.DataFrame:
    rows = []
    for model, values in scores.items():
        for i, value in enumerate(values):
            rows.append({"model_id": model, "prompt_id": f"p{i}", "category": "c", metric: value})
    return pd.DataFrame(rows)


def test_paired_comparisons_frame():
    a = list(np.random.default_rng(3).uniform(0, 50, size=20))
    frame = sf.paired_comparisons(_per_prompt_by_hand({"x": a, "y": [v + 10 for v in a], "z": a[:19] + [np.nan]}, "bleu"), "bleu")
    assert list(frame.columns) == sf.PAIRWISE_COLUMNS
    assert [tuple(r) for r in frame[["model_a", "model_b"]].to_numpy()] == [("x", "y"), ("x", "z"), ("y", "z")]
    xy, xz, yz = frame.to_dict("records")
    assert xy["diff"] == pytest.approx(-10) and xy["significant"] and xy["better"] == "y"  # BLEU: higher is better
    assert xz["n"] == 19 and xz["diff"] == 0 and not xz["significant"] and xz["better"] is None
    assert yz["better"] == "y"


def test_lower_is_better_direction():
    frame = sf.paired_comparisons(
        _per_prompt_by_hand({"x": [0.5] * 10, "y": [0.0] * 10}, "repeated_4gram_rate"), "repeated_4gram_rate"
    )
    assert frame.loc[0, "significant"] and frame.loc[0, "better"] == "y"


# ------------------------------------------------------------------------------------------------
# a real store with two models
# ------------------------------------------------------------------------------------------------

PROMPTS = PromptSet(
    prompts=[
        Prompt(id="capital", category="geo", prompt="Capital of France?", reference="Paris"),
        Prompt(id="sum", category="math", prompt="2+2?", references=("4", "four")),
        Prompt(id="story", category="open", prompt="Tell a story."),
    ]
)


def _result(prompt_id, text, tokens=None, finish="eos", latency=1.0, ttft=None):
    tokens = len(text.split()) if tokens is None else tokens
    error = "boom" if finish == "error" else None
    return GenerationResult(prompt_id, text, 5, tokens, finish, latency, ttft, error)


def _save(store, model, fingerprint, run_id, results, settings="s1", batch_size=1, **run_values):
    if run_id not in set(store.runs_frame()["run_id"]):
        store.start_run(run_id, "cfg", {})
    store.start_model_run(run_id, model, fingerprint, settings, {})
    store.save_results(
        fingerprint=fingerprint,
        model_id=model,
        run_id=run_id,
        settings_hash=settings,
        request_hashes={r.prompt_id: f"h-{settings}" for r in results},
        results=results,
        batch_size=batch_size,
    )
    if run_values:
        store.update_model_run(run_id, model, **run_values)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "results.sqlite") as s:
        _save(
            s,
            "alpha",
            "fa",
            "r1",
            [
                _result("capital", "The Paris.", finish="length", latency=1.0, ttft=0.1),
                _result("sum", "5", latency=2.0, ttft=0.2),
                _result("story", "once upon a time once upon a time", latency=3.0, ttft=0.3),
                _result("gone", "a prompt no longer in the set"),
            ],
            generated_tokens=12,
            generate_time_s=6.0,
            device="cpu",
            weight_bytes=1000,
            load_time_s=0.5,
        )
        _save(
            s,
            "beta",
            "fb",
            "r1",
            [
                _result("capital", "London"),
                _result("sum", "", finish="error", tokens=0),
                _result("story", "a b c"),
            ],
        )
        yield s


def test_latest_results_picks_newest_fingerprint_and_settings(store):
    time.sleep(0.01)
    _save(store, "alpha", "fa2", "r2", [_result("capital", "Paris")])  # retrained: only one prompt so far
    latest = sf.latest_results(store.results_frame())
    assert set(latest.loc[latest.model_id == "alpha", "fingerprint"]) == {"fa2"}
    assert len(latest[latest.model_id == "alpha"]) == 1
    pinned = sf.latest_results(store.results_frame(), {"alpha": "fa"})
    assert set(pinned["model_id"]) == {"alpha"} and len(pinned) == 4  # beta not asked for
    time.sleep(0.01)
    _save(store, "beta", "fb", "r3", [_result("story", "new settings")], settings="s2")
    beta = sf.latest_results(store.results_frame(), {"beta": None})
    assert beta["text"].tolist() == ["new settings"]


def test_latest_results_keeps_newest_row_per_prompt():
    frame = pd.DataFrame(
        {
            "model_id": ["m", "m", "m"],
            "fingerprint": ["f", "f", "f"],
            "settings_hash": ["s"] * 3,
            "prompt_id": ["p", "p", "q"],
            "request_hash": ["old", "new", "x"],
            "created_at": [1.0, 2.0, 1.5],
            "text": ["old", "new", "q"],
        }
    )
    assert sf.latest_results(frame)["text"].tolist() == ["new", "q"]
    assert sf.latest_results(frame.iloc[0:0]).empty


def test_per_prompt_frame(store):
    frame = sf.per_prompt_frame(sf.latest_results(store.results_frame()), PROMPTS, model_order=["beta", "alpha"])
    assert list(frame.columns[: len(sf.PER_PROMPT_COLUMNS)]) == sf.PER_PROMPT_COLUMNS
    assert "exact_match" in frame and "distinct_2" in frame
    assert list(zip(frame.model_id, frame.prompt_id)) == [
        ("beta", "capital"),
        ("beta", "sum"),
        ("beta", "story"),
        ("alpha", "capital"),
        ("alpha", "sum"),
        ("alpha", "story"),
    ]  # study order, then prompt-set order; 'gone' dropped
    alpha = frame[frame.model_id == "alpha"].set_index("prompt_id")
    assert alpha.loc["capital", "exact_match"] == 1.0
    assert alpha.loc["capital", "hit_token_limit"] == 1.0
    assert alpha.loc["capital", "category"] == "geo"
    assert alpha.loc["sum", "references"] == ("4", "four")
    assert math.isnan(alpha.loc["story", "exact_match"])  # no reference
    assert alpha.loc["story", "repeated_4gram_rate"] == pytest.approx(1 / 5)
    beta = frame[frame.model_id == "beta"].set_index("prompt_id")
    assert bool(beta.loc["sum", "failed"]) and math.isnan(beta.loc["sum", "distinct_1"])


def test_per_prompt_without_references_has_only_text_metrics(store):
    plain = PromptSet(prompts=[Prompt(id="story", prompt="Tell a story.")])
    frame = sf.per_prompt_frame(sf.latest_results(store.results_frame()), plain)
    assert "bleu" not in frame and "distinct_1" in frame and len(frame) == 2
    empty = sf.per_prompt_frame(store.results_frame().iloc[0:0], PROMPTS)
    assert empty.empty and "exact_match" in empty


def test_model_and_category_summary(store):
    per_prompt = sf.per_prompt_frame(sf.latest_results(store.results_frame()), PROMPTS)
    summary = sf.model_summary(per_prompt, ["exact_match", "length_words"])
    assert list(summary.columns) == sf.SUMMARY_COLUMNS
    row = summary.set_index(["model_id", "metric"])
    assert row.loc[("alpha", "exact_match"), "mean"] == 0.5 and row.loc[("alpha", "exact_match"), "n"] == 2
    assert row.loc[("alpha", "length_words"), "mean"] == pytest.approx((2 + 1 + 8) / 3)
    assert row.loc[("beta", "exact_match"), "n"] == 1  # the failed prompt is not scored
    cats = sf.category_summary(per_prompt, ["exact_match"]).set_index(["model_id", "category"])
    assert list(sf.category_summary(per_prompt).columns) == sf.CATEGORY_COLUMNS
    assert cats.loc[("alpha", "geo"), "mean"] == 1.0 and cats.loc[("alpha", "math"), "mean"] == 0.0
    assert cats.loc[("alpha", "open"), "n"] == 0


# ------------------------------------------------------------------------------------------------
# efficiency
# ------------------------------------------------------------------------------------------------


def _runs(**values):
    base = {
        "run_id": "r1",
        "model_id": "m",
        "fingerprint": "f",
        "started_at": 1.0,
        "generated_tokens": 0,
        "generate_time_s": 0.0,
        "load_time_s": None,
        "device": "cpu",
        "weight_bytes": None,
        "peak_memory_bytes": None,
        "details": "{}",
    }
    return pd.DataFrame([{**base, **values}])


def _batched_results():
    # two batches of two: latencies 1 s and 3 s, the longest outputs 20 and 40 tokens
    rows = [(10, 1.0, 0.2), (20, 1.0, 0.2), (30, 3.0, 0.4), (40, 3.0, 0.4)]
    return pd.DataFrame(
        [
            {
                "model_id": "m",
                "fingerprint": "f",
                "run_id": "r1",
                "prompt_id": f"p{i}",
                "output_tokens": t,
                "latency_s": lat,
                "ttft_s": ttft,
                "batch_size": 2,
                "finish_reason": "eos",
            }
            for i, (t, lat, ttft) in enumerate(rows)
        ]
    )


def test_efficiency_from_the_run():
    runs = _runs(generated_tokens=100, generate_time_s=4.0, load_time_s=2.5, peak_memory_bytes=5e9)
    row = se.efficiency_frame(_batched_results(), runs, {"m": 10**9}, 30e9).iloc[0]
    assert list(se.efficiency_frame(_batched_results(), runs).columns) == se.EFFICIENCY_COLUMNS
    assert row.tokens_per_s == 25.0 and row.throughput_source == "run"
    assert row.decode_steps == 60 and row.decode_steps_per_s == 15.0 and row.mean_batch_size == 2.0
    assert row.bandwidth_share == pytest.approx(1e9 * 15 / 30e9)
    assert row.load_time_s == 2.5 and row.peak_memory_bytes == 5e9
    assert row.latency_p50_s == 2.0 and row.ttft_p50_s == pytest.approx(0.3)


def test_efficiency_falls_back_to_latencies():
    row = se.efficiency_frame(_batched_results(), _runs(), {"m": None}, None).iloc[0]
    # 100 tokens over the two batches' 1 s + 3 s (each batch's time counted once)
    assert row.tokens_per_s == 25.0 and row.throughput_source == "latency"
    assert row.decode_steps_per_s == 15.0 and math.isnan(row.bandwidth_share) and math.isnan(row.weight_bytes)


def test_efficiency_bandwidth_by_device():
    gpu = _runs(generated_tokens=100, generate_time_s=4.0, device="cuda:0", weight_bytes=2 * 10**9)
    assert math.isnan(se.efficiency_frame(_batched_results(), gpu, None, 30e9).iloc[0].bandwidth_share)  # host figure
    row = se.efficiency_frame(_batched_results(), gpu, None, {"cuda": 4e12}).iloc[0]
    assert row.bandwidth_share == pytest.approx(2e9 * 15 / 4e12)
    recorded = _runs(
        generated_tokens=100, generate_time_s=4.0, weight_bytes=10**9, details='{"memory_bandwidth_bytes_per_s": 15e9}'
    )
    assert se.efficiency_frame(_batched_results(), recorded).iloc[0].bandwidth_share == pytest.approx(1.0)
    # the figure hardware_summary(measure_bandwidth=True) left in the run manifest
    cpu = _runs(generated_tokens=100, generate_time_s=4.0, weight_bytes=10**9)
    runs = pd.DataFrame({"run_id": ["r1"], "manifest": ['{"hardware": {"memory_bandwidth_bytes_per_s": 3e10}}']})
    assert se.efficiency_frame(_batched_results(), cpu, runs=runs).iloc[0].bandwidth_share == pytest.approx(0.5)
    assert math.isnan(se.efficiency_frame(_batched_results(), gpu, runs=runs).iloc[0].bandwidth_share)


def test_efficiency_counts_failures_and_unbatched_steps(store):
    frame = se.efficiency_frame(sf.latest_results(store.results_frame()), store.model_runs_frame(), model_order=["alpha", "beta"])
    alpha, beta = frame.to_dict("records")
    assert alpha["tokens_per_s"] == 2.0 and alpha["decode_steps"] == 2 + 1 + 8 + 7  # unbatched: steps = tokens
    assert alpha["weight_bytes"] == 1000 and alpha["load_time_s"] == 0.5
    assert beta["n_failed"] == 1 and beta["n_prompts"] == 3 and beta["throughput_source"] == "latency"


# ------------------------------------------------------------------------------------------------
# language modelling
# ------------------------------------------------------------------------------------------------


def test_lm_frame():
    ln2 = math.log(2)
    loglik = pd.DataFrame(
        [
            {
                "model_id": "m",
                "fingerprint": "f",
                "text_id": f"t{i}",
                "text_hash": "h",
                "nll_nats": nll * ln2,
                "n_tokens": 10,
                "n_bytes": 40,
                "created_at": 1.0,
            }
            for i, nll in enumerate([40.0, 80.0, 60.0, 20.0])
        ]
        + [
            {
                "model_id": "m",
                "fingerprint": "old",
                "text_id": "t0",
                "text_hash": "h",
                "nll_nats": 1.0,
                "n_tokens": 10,
                "n_bytes": 40,
                "created_at": 0.5,
            }
        ]
    )
    row = sl.lm_frame(loglik).iloc[0]
    assert list(sl.lm_frame(loglik).columns) == sl.LM_COLUMNS
    assert row.fingerprint == "f" and row.n_texts == 4 and row.n_bytes == 160
    assert row.bits_per_byte == pytest.approx(200 / 160)
    assert row.bpb_ci_low < row.bits_per_byte < row.bpb_ci_high
    assert row.perplexity == pytest.approx(math.exp(200 * ln2 / 40))
    assert sl.lm_frame(loglik.iloc[0:0]).empty


# ------------------------------------------------------------------------------------------------
# history and run deltas
# ------------------------------------------------------------------------------------------------


def test_history_and_run_delta(store):
    time.sleep(0.01)
    _save(store, "alpha", "fa2", "r2", [_result("capital", "Paris"), _result("sum", "four"), _result("story", "a b")])
    history = sh.history_frame(store.model_runs_frame(), store.results_frame(), "alpha", PROMPTS)
    assert history["fingerprint"].tolist() == ["fa", "fa2"]
    assert history["exact_match"].tolist() == [0.5, 1.0]
    assert history["n_prompts"].tolist() == [3, 3]
    text_only = sh.history_frame(store.model_runs_frame(), store.results_frame(), "alpha")
    assert "exact_match" not in text_only and "distinct_1" in text_only

    old = sf.per_prompt_frame(sf.latest_results(store.results_frame(), {"alpha": "fa"}), PROMPTS)
    new = sf.per_prompt_frame(sf.latest_results(store.results_frame(), {"alpha": "fa2"}), PROMPTS)
    delta = sh.run_delta(old, new, "exact_match")
    assert delta["n"] == 2 and delta["diff"] == 0.5 and delta["mean_new"] == 1.0
    shifted = old.assign(bleu=10.0)
    few = sh.run_delta(shifted, shifted.assign(bleu=30.0), "bleu")
    # two or three prompts: the smallest p a sign-flip test can give is 2/2^n, so nothing is significant
    assert few["diff"] == 20.0 and few["p_value"] >= 0.25 and not few["significant"] and few["improved"] is None
    eight = _per_prompt_by_hand({"alpha": [10.0 + i for i in range(8)]}, "bleu")
    better = sh.run_delta(eight, eight.assign(bleu=eight["bleu"] + 20), "bleu")
    assert better["p_value"] == pytest.approx(2 / 2**8) and better["significant"] and better["improved"] is True
    with pytest.raises(ValueError, match="one model"):
        sh.run_delta(pd.concat([old, old]), new, "bleu")


# ------------------------------------------------------------------------------------------------
# compute_tables: everything, deterministic
# ------------------------------------------------------------------------------------------------


def test_compute_tables_is_deterministic(store):
    store.save_loglik(
        fingerprint="fa",
        model_id="alpha",
        run_id="r1",
        text_hashes={"t": "h", "u": "h"},
        results=[LogLikelihoodResult("t", 10.0, 4, 20), LogLikelihoodResult("u", 5.0, 2, 10)],
    )
    study = Study(title="t", models=[ModelConfig(id=m, name=m, config=Path("c.json")) for m in ("beta", "alpha", "spec-only")])
    first = st.compute_tables(store, study, PROMPTS, n_boot=500)
    second = st.compute_tables(store, study, PROMPTS, n_boot=500)
    assert first.model_ids == ["beta", "alpha"] and first.fingerprints == {"beta": "fb", "alpha": "fa"}
    assert "exact_match" in first.metrics
    for name in ("per_prompt", "summary", "category_summary", "pairwise", "efficiency", "lm"):
        assert getattr(first, name).to_csv() == getattr(second, name).to_csv(), name
    assert set(first.pairwise["metric"]) == set(first.metrics)
    assert first.pairwise[["model_a", "model_b"]].drop_duplicates().values.tolist() == [["beta", "alpha"]]
    assert first.lm["bits_per_byte"].iloc[0] == pytest.approx(15 / (math.log(2) * 30))


# ------------------------------------------------------------------------------------------------
# hardware (the bandwidth the efficiency frame divides by)
# ------------------------------------------------------------------------------------------------


def test_memory_bandwidth_is_measured_once_per_process(monkeypatch):
    from reportgen.util import hardware

    copies = []
    real_copyto = hardware.np.copyto

    def counting_copyto(target, source):
        copies.append(source.nbytes)
        return real_copyto(target, source)

    monkeypatch.setattr(hardware.np, "copyto", counting_copyto)
    first = hardware.measure_memory_bandwidth(size_mb=17, repeats=2)  # a size no other test measured
    assert 1e8 < first < 1e13  # between 0.1 GB/s and 10 TB/s
    assert copies == [17 * 2**20] * 3  # a warm-up copy, then the two timed ones
    assert hardware.measure_memory_bandwidth(17, 2) == first
    assert len(copies) == 3  # the second call copied nothing
    with pytest.raises(ValueError):
        hardware.measure_memory_bandwidth(size_mb=0)


def test_hardware_summary_without_torch():
    from reportgen.util import hardware

    summary = hardware.hardware_summary(include_torch=False)
    assert summary["cpu_cores"] >= 1 and summary["memory_total_bytes"] > 0
    assert summary["gpu_name"] is None and summary["gpus"] == []
    assert "memory_bandwidth_bytes_per_s" not in summary


def test_lm_scores_follow_the_weights_not_the_entry_that_stored_them():
    """Greedy and sampled entries of one model share a fingerprint; its scores serve both."""
    import pandas as pd

    from reportgen.stats.lm import lm_frame

    loglik = pd.DataFrame(
        [
            {
                "fingerprint": "w1",
                "text_id": "t",
                "text_hash": "h",
                "model_id": "sampled",
                "nll_nats": 6.93,
                "n_tokens": 5,
                "n_bytes": 10,
                "created_at": 1.0,
            },
        ]
    )
    frame = lm_frame(loglik, {"greedy": "w1", "sampled": "w1"}, model_order=["greedy", "sampled"])
    assert list(frame["model_id"]) == ["greedy", "sampled"]
    assert frame["bits_per_byte"].round(3).tolist() == [1.0, 1.0]
