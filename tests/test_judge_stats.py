"""Judged statistics on synthetic verdicts with a known answer: Bradley–Terry strengths and intervals against
choix's maximum-likelihood fit, paired tests of rubric scores, and the position-bias rule of reliability."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reportgen.stats.inference import holm, sign_flip_test
from reportgen.stats.judged import bt_strengths, pairwise_reliability, position_bias_p, rubric_paired

# -- Bradley–Terry against choix ----------------------------------------------------------------

TRUE = {"base": 0.0, "strong": 1.0, "weak": -0.5}  # log-strengths relative to the baseline


def synthetic_outcomes(prompts: int = 200) -> pd.DataFrame:
    """Each model against the baseline on every prompt, both orders; wins spread over the prompts so that
    the share of wins is exactly the Bradley–Terry probability (rounded to a whole judgement)."""
    rows = []
    for model in ("strong", "weak"):
        p = 1 / (1 + math.exp(-(TRUE[model] - TRUE["base"])))
        wins = round(2 * prompts * p)
        outcomes = [1.0] * wins + [0.0] * (2 * prompts - wins)
        order = np.random.default_rng(7).permutation(len(outcomes))  # wins scattered over prompts and orders
        for k, index in enumerate(order):
            rows.append(
                {"model_id": model, "prompt_id": f"p{k // 2}", "order": ("first", "second")[k % 2], "outcome": outcomes[index]}
            )
    return pd.DataFrame(rows)


def test_bradley_terry_strengths_and_intervals_agree_with_choix_maximum_likelihood():
    import choix

    outcomes = synthetic_outcomes()
    table = bt_strengths(outcomes, "base", ["strong", "weak"], n_boot=200, seed=0).set_index("model_id")
    # choix's optimiser-based maximum-likelihood fit on the same verdicts (baseline item 0)
    items = {"base": 0, "strong": 1, "weak": 2}
    data = []
    for model, outcome in zip(outcomes["model_id"], outcomes["outcome"]):
        data.append((items[model], 0) if outcome == 1.0 else (0, items[model]))
    ml = np.asarray(choix.opt_pairwise(3, data, alpha=1e-9), dtype=float)
    ml -= ml[0]
    for model, index in items.items():
        assert table.loc[model, "strength"] == pytest.approx(ml[index], abs=0.01)
        # the known answer lies inside the 95% interval, which is a real interval away from the baseline
        low, high = table.loc[model, "strength_low"], table.loc[model, "strength_high"]
        assert low - 1e-9 <= TRUE[model] <= high + 1e-9
    assert table.loc["strong", "strength_low"] > 0 > table.loc["weak", "strength_high"]
    assert (table.loc["base", "strength_low"], table.loc["base", "strength_high"]) == (0.0, 0.0)
    assert table.loc["strong", "p_beats_baseline"] == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.01)


# -- paired tests of rubric scores --------------------------------------------------------------


def test_rubric_scores_get_paired_tests_like_other_metrics():
    prompts = [f"p{i}" for i in range(12)]
    base = [5, 6, 4, 5, 7, 5, 6, 4, 5, 6, 5, 4]
    good = [b + 3 for b in base]  # three points better on every prompt
    noisy = [b + (1 if i % 2 else -1) for i, b in enumerate(base)]  # no difference on average
    scores = pd.DataFrame(
        [
            {"model_id": m, "prompt_id": p, "score": float(v)}
            for m, vs in (("base", base), ("good", good), ("noisy", noisy))
            for p, v in zip(prompts, vs)
        ]
    )
    table = rubric_paired(scores, ["base", "good", "noisy"], n_boot=500, seed=0)
    assert list(zip(table["model_a"], table["model_b"])) == [("base", "good"), ("base", "noisy"), ("good", "noisy")]
    rows = table.set_index(["model_a", "model_b"])
    assert set(table["metric"]) == {"judge_score"} and set(table["n"]) == {12}
    assert rows.loc[("base", "good"), "diff"] == -3.0
    # the test is the paired sign-flip permutation test of the per-prompt differences, Holm-adjusted over pairs
    expected = [sign_flip_test(np.subtract(a, b), seed=0).p_value for a, b in ((base, good), (base, noisy), (good, noisy))]
    assert list(table["p_value"]) == pytest.approx(expected)
    assert list(table["p_holm"]) == pytest.approx(holm(expected))
    assert rows.loc[("base", "good"), "significant"] and rows.loc[("base", "good"), "better"] == "good"
    assert rows.loc[("good", "noisy"), "better"] == "good"
    assert not rows.loc[("base", "noisy"), "significant"] and rows.loc[("base", "noisy"), "better"] is None
    # constant differences have no bootstrap interval
    assert math.isnan(rows.loc[("base", "good"), "ci_low"])
    assert rubric_paired(scores, ["base"]).empty and rubric_paired(scores.iloc[:0], ["base", "good"]).empty


# -- position bias -------------------------------------------------------------------------------


def reliability(verdicts: dict[str, tuple[str, str]]) -> object:
    """prompt → (verdict with the model first, verdict with the model second)."""
    table = {"first": {"A": 1.0, "B": 0.0, "C": 0.5}, "second": {"A": 0.0, "B": 1.0, "C": 0.5}}
    rows = [
        {
            "model_id": "m",
            "prompt_id": p,
            "order": order,
            "outcome": table[order][v],
            "verdict": v,
            "len_model": 10,
            "len_baseline": 10,
        }
        for p, pair in verdicts.items()
        for order, v in zip(("first", "second"), pair)
    ]
    outcomes = pd.DataFrame(rows)
    counts = {"expected": len(rows), "unparsed": 0, "failed": 0}
    return pairwise_reliability(outcomes, counts, pd.DataFrame(), "base", None, 0.6)


def test_a_judge_that_ties_or_says_a_is_unreliable_though_consistent():
    # 14 prompts a tie both ways (consistent), 6 prompts "A" both ways (the first answer always wins)
    verdicts = {f"t{i}": ("C", "C") for i in range(14)} | {f"a{i}": ("A", "A") for i in range(6)}
    r = reliability(verdicts)
    assert r.consistency == pytest.approx(0.7) and r.consistent
    assert (r.first_position_rate, r.first_position_n) == (1.0, 12)
    assert r.first_position_p == pytest.approx(2 * 0.5**12)  # two-sided exact binomial test
    assert r.position_biased and not r.reliable


def test_a_fair_judge_is_not_called_position_biased():
    # the model wins on 6 prompts and loses on 4, whichever order: first-position choices are 10 of 20
    verdicts = {f"w{i}": ("A", "B") for i in range(6)} | {f"l{i}": ("B", "A") for i in range(4)}
    r = reliability(verdicts)
    assert r.consistency == 1.0 and r.first_position_rate == 0.5 and r.first_position_p == pytest.approx(1.0)
    assert not r.position_biased and r.reliable
    # without decisive verdicts there is no test, and no bias is claimed
    assert math.isnan(position_bias_p(0, 0)) and not reliability({"t": ("C", "C")}).position_biased
