"""A model that generated no tokens (or took no time) has no throughput: no speed ratio names it, and the
report says why ("n/a"), never "∞×"."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from reportgen.analysis.findings import Finding
from reportgen.analysis.phrasing import phrase
from reportgen.analysis.results import efficiency_findings, throughput_finding
from reportgen.stats.efficiency import efficiency_frame

NAMES = {"fast": "Fast model", "slow": "Slow model", "mute": "Mute model", "instant": "Instant model"}


def frames(models: dict[str, tuple[int, float]]) -> pd.DataFrame:
    """The efficiency frame of models given as model_id → (generated tokens, generation seconds)."""
    results, runs = [], []
    for model_id, (tokens, seconds) in models.items():
        for i in range(2):
            results.append(
                {
                    "model_id": model_id,
                    "fingerprint": f"fp-{model_id}",
                    "run_id": "r1",
                    "prompt_id": f"p{i}",
                    "output_tokens": tokens // 2,
                    "latency_s": seconds / 2,
                    "ttft_s": 0.1,
                    "batch_size": 1,
                    "finish_reason": "length" if tokens else "eos",
                }
            )
        runs.append(
            {
                "run_id": "r1",
                "model_id": model_id,
                "fingerprint": f"fp-{model_id}",
                "started_at": 1.0,
                "generated_tokens": tokens,
                "generate_time_s": seconds,
                "load_time_s": None,
                "device": "cpu",
                "weight_bytes": None,
                "peak_memory_bytes": 1e9 if tokens else 0.0,
                "details": "{}",
            }
        )
    return efficiency_frame(pd.DataFrame(results), pd.DataFrame(runs), model_order=list(models))


def rows(frame: pd.DataFrame) -> dict[str, dict]:
    return {row["model_id"]: row for row in frame.to_dict("records")}


def text_of(finding: Finding) -> str:
    return phrase(finding, NAMES).text


def test_a_model_without_tokens_gets_no_ratio_and_a_reason():
    frame = frames({"fast": (100, 4.0), "mute": (0, 2.0)})
    assert frame.set_index("model_id").at["mute", "tokens_per_s"] == 0.0  # 0 tokens in 2 s: what the table shows
    finding = throughput_finding(rows(frame))
    assert finding.numbers["ratio"] is None and finding.numbers["slowest"] is None
    assert finding.numbers["no_throughput"] == {"mute": "no_tokens"}
    text = text_of(finding)
    assert "∞" not in text and "inf" not in text
    assert "Mute model generated no tokens, so it has no throughput and no ratio (n/a)" in text, text
    fastest = text_of(Finding("conclusion.fastest", finding.subjects, finding.numbers, "conclusion"))
    assert "∞" not in fastest and "n/a" in fastest and "Fast model" in fastest, fastest


def test_the_ratio_compares_only_models_with_a_throughput():
    finding = throughput_finding(rows(frames({"fast": (100, 4.0), "slow": (50, 5.0), "mute": (0, 1.0)})))
    assert finding.numbers["fastest"] == "fast" and finding.numbers["slowest"] == "slow"
    assert finding.numbers["ratio"] == 2.5
    text = text_of(finding)
    assert "2.50× the throughput of the slowest, Slow model" in text and "Mute model generated no tokens" in text, text


def test_zero_seconds_is_no_throughput_either():
    table = rows(frames({"fast": (100, 4.0), "slow": (50, 5.0)}))
    table["instant"] = {**table["slow"], "model_id": "instant", "generated_tokens": 10.0, "generate_time_s": 0.0}
    table["instant"]["tokens_per_s"] = float("inf")  # what a plain division would give
    finding = throughput_finding(table)
    assert finding.numbers["no_throughput"] == {"instant": "no_time"} and finding.numbers["ratio"] == 2.5
    assert "Instant model took no measurable generation time" in text_of(finding)


def test_efficiency_statements_never_say_infinity():
    frame = frames({"fast": (100, 4.0), "mute": (0, 2.0)})
    texts = [text_of(f) for f in efficiency_findings(SimpleNamespace(efficiency=frame))]
    assert texts and not any("∞" in t for t in texts), texts
    # 0 bytes of peak memory is "not measured": no "∞× as much" memory either
    assert not any(t.startswith("Memory:") for t in texts), texts


def test_no_model_with_a_throughput_is_no_finding():
    assert throughput_finding(rows(frames({"mute": (0, 1.0), "other": (0, 2.0)}))) is None
