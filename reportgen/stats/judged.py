"""Judged comparisons: win / tie / loss rates against the baseline, Bradley–Terry strengths, rubric
scores, and the judge's own reliability. Pure functions of the stored judgements and the current answers.

A judgement is looked up by the hashes of the current answers, so a judgement of an answer a model no
longer gives never counts. Only the judge's current fingerprint and settings count (those of its most
recent judgement). Per prompt and model, pairwise outcomes are the candidate's share over both orders
(a win counts 1, a tie ½); intervals are percentile bootstraps over prompts.

Reliability: *position consistency* is the share of prompts judged in both orders whose verdict
survives the swap (same winner, or a tie both times); the *first-position rate* is the share of
decisive verdicts that chose the answer shown first; *length bias* is the share of decisive verdicts
(between answers of different lengths) that chose the longer answer, and the Spearman correlation of
the candidate's outcome with its length advantage; *reference agreement* is, on prompts whose answers
a reference metric tells apart, the share where the judge prefers the answer the metric scores higher.
A judge whose consistency is below its ``min_consistency`` (or cannot be measured) is unreliable. So is
a *position-biased* judge: every pair is shown in both orders, so a fair judge's decisive verdicts choose
the answer shown first about half the time, whatever it thinks of the answers; a two-sided exact binomial
test of the first-position choices against ½ at the 5% level (``POSITION_BIAS_ALPHA``) below which the
judge is called biased. Without it, a judge that calls most pairs a tie and otherwise always says "A"
passes the consistency threshold on its ties alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from reportgen.judge.tasks import answer_hash
from reportgen.stats.bootstrap import LEVEL, N_BOOT, SEED, bootstrap_ci, paired_bootstraps
from reportgen.stats.inference import holm

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.study.config import JudgeConfig

__all__ = [
    "JudgeReliability",
    "JudgedComparison",
    "bradley_terry",
    "current_judgements",
    "judge_comparison",
    "pairwise_outcomes",
    "rubric_paired",
    "win_rates",
]

RATE_COLUMNS = [
    "model_id",
    "n",
    "win",
    "win_low",
    "win_high",
    "tie",
    "tie_low",
    "tie_high",
    "loss",
    "loss_low",
    "loss_high",
    "score",
    "score_low",
    "score_high",
]
STRENGTH_COLUMNS = ["model_id", "strength", "strength_low", "strength_high", "p_beats_baseline"]
POSITION_BIAS_ALPHA = 0.05  # a first-position rate this unlikely under a fair judge (two-sided) is position bias
RUBRIC_COLUMNS = ["model_id", "n", "mean", "ci_low", "ci_high"]
# the columns of stats.frames.paired_comparisons, for the metric "judge_score"
PAIRED_COLUMNS = [
    "metric",
    "model_a",
    "model_b",
    "n",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "significant",
    "better",
]
OUTCOME_COLUMNS = ["model_id", "prompt_id", "order", "outcome", "verdict", "len_model", "len_baseline"]


@dataclass(frozen=True)
class JudgeReliability:
    judgements: int  # parsed verdicts used
    expected: int  # judgements the current answers call for
    unparsed: int
    failed: int
    consistency: float  # position consistency (NaN when no prompt was judged in both orders)
    consistency_n: int
    tie_rate: float
    first_position_rate: float
    longer_wins_rate: float
    length_correlation: float
    reference_metric: str | None
    reference_agreement: float
    reference_n: int
    min_consistency: float
    mode: str = "pairwise"  # rubric: no order to swap, so consistency is not measured
    first_position_n: int = 0  # decisive verdicts behind first_position_rate
    first_position_p: float = math.nan  # two-sided exact binomial test of first_position_rate against ½

    @property
    def missing(self) -> int:
        return max(0, self.expected - self.judgements - self.unparsed - self.failed)

    @property
    def consistent(self) -> bool:
        return not math.isnan(self.consistency) and self.consistency >= self.min_consistency

    @property
    def position_biased(self) -> bool:
        return self.mode == "pairwise" and not math.isnan(self.first_position_p) and self.first_position_p < POSITION_BIAS_ALPHA

    @property
    def reliable(self) -> bool:
        if self.mode == "rubric":
            return self.judgements > 0
        return self.consistent and not self.position_biased


@dataclass
class JudgedComparison:
    judge_id: str
    judge_name: str
    mode: str
    baseline: str | None
    rates: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RATE_COLUMNS))
    strengths: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STRENGTH_COLUMNS))
    rubric: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RUBRIC_COLUMNS))
    paired: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PAIRED_COLUMNS))  # rubric: model pairs
    reliability: JudgeReliability | None = None
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)  # one verdict per (model, prompt): raw text kept

    @property
    def reliable(self) -> bool:
        return self.reliability is not None and self.reliability.reliable


# ---------------------------------------------------------------------------------------------
# Selecting


def current_judgements(judgements: pd.DataFrame, judge_id: str) -> pd.DataFrame:
    """The judge's rows of its current fingerprint and settings (those of its newest row), newest per key."""
    rows = judgements[judgements["judge_id"] == judge_id] if len(judgements) else judgements
    if rows.empty:
        return rows.copy()
    newest = rows.sort_values("created_at", kind="stable").iloc[-1]
    rows = rows[(rows["judge_fingerprint"] == newest["judge_fingerprint"]) & (rows["settings_hash"] == newest["settings_hash"])]
    return rows.sort_values("created_at", kind="stable").drop_duplicates(["prompt_id", "hash_a", "hash_b"], keep="last")


def _answers(per_prompt: pd.DataFrame) -> dict[tuple[str, str], str]:
    ok = per_prompt[~per_prompt["failed"].astype(bool)] if len(per_prompt) else per_prompt
    return {(m, p): str(o) for m, p, o in zip(ok["model_id"], ok["prompt_id"], ok["output"])}


_CANDIDATE_FIRST = {"A": 1.0, "B": 0.0, "C": 0.5}
_CANDIDATE_SECOND = {"A": 0.0, "B": 1.0, "C": 0.5}


def pairwise_outcomes(
    rows: pd.DataFrame, per_prompt: pd.DataFrame, baseline: str, models: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per (model, prompt, order) with a parsed verdict: ``outcome`` is the model's (1 win, ½ tie, 0 loss);
    ``order`` is "first" when the model's answer was shown first. Also counts of expected/unparsed/failed."""
    answers = _answers(per_prompt)
    index = (
        {(p, a, b): r for p, a, b, r in zip(rows["prompt_id"], rows["hash_a"], rows["hash_b"], rows.to_dict("records"))}
        if len(rows)
        else {}
    )
    records, counts = [], {"expected": 0, "unparsed": 0, "failed": 0}
    prompts = list(dict.fromkeys(per_prompt["prompt_id"].tolist())) if len(per_prompt) else []
    for model in models:
        for prompt in prompts:
            mine, base = answers.get((model, prompt)), answers.get((baseline, prompt))
            if mine is None or base is None:
                continue
            hm, hb = answer_hash(mine), answer_hash(base)
            for order, key, table in (
                ("first", (prompt, hm, hb), _CANDIDATE_FIRST),
                ("second", (prompt, hb, hm), _CANDIDATE_SECOND),
            ):
                counts["expected"] += 1
                row = index.get(key)
                if row is None:
                    continue
                if row["status"] != "ok":
                    counts["unparsed" if row["status"] == "unparsed" else "failed"] += 1
                    continue
                records.append(
                    {
                        "model_id": model,
                        "prompt_id": prompt,
                        "order": order,
                        "outcome": table[row["verdict"]],
                        "verdict": row["verdict"],
                        "len_model": len(mine),
                        "len_baseline": len(base),
                        "raw": row["raw"],
                    }
                )
    frame = pd.DataFrame(records, columns=[*OUTCOME_COLUMNS, "raw"])
    return frame, counts


# ---------------------------------------------------------------------------------------------
# Rates and strengths


def win_rates(
    outcomes: pd.DataFrame, models: Sequence[str], n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> pd.DataFrame:
    """Per model: the shares of its judgements won, tied and lost against the baseline, and its score
    (wins + ½ ties), each the mean over prompts of the per-prompt share, with a bootstrap interval over prompts."""
    rows = []
    for model in models:
        mine = outcomes[outcomes["model_id"] == model]
        per_prompt = mine.groupby("prompt_id", sort=False)["outcome"]
        shares = {
            "win": per_prompt.apply(lambda s: float((s == 1.0).mean())),
            "tie": per_prompt.apply(lambda s: float((s == 0.5).mean())),
            "loss": per_prompt.apply(lambda s: float((s == 0.0).mean())),
            "score": per_prompt.mean(),
        }
        row = {"model_id": model, "n": int(mine["prompt_id"].nunique())}
        for name, values in shares.items():
            row[name], row[f"{name}_low"], row[f"{name}_high"] = bootstrap_ci(values.to_numpy(dtype=float), n_boot, seed, level)
        rows.append(row)
    return pd.DataFrame(rows, columns=RATE_COLUMNS)


def bradley_terry(comparisons: Sequence[tuple[int, int, float]], n_items: int, alpha: float = 0.01) -> np.ndarray:
    """Bradley–Terry log-strengths (mean 0) from (i, j, outcome of i) comparisons (1 win, ½ tie, 0 loss),
    fitted by choix's iterative Luce spectral ranking (a tie counts as half a win each way; ``alpha`` is
    a small regularisation so that an item that always wins keeps a finite strength)."""
    import choix

    data: list[tuple[int, int]] = []
    for i, j, outcome in comparisons:
        wins_i = int(round(outcome * 2))  # two half-comparisons per judgement
        data += [(i, j)] * wins_i + [(j, i)] * (2 - wins_i)
    if not data:
        return np.zeros(n_items)
    params = np.asarray(choix.ilsr_pairwise(n_items, data, alpha=alpha), dtype=float)
    centred: np.ndarray = params - params.mean()
    return centred


def bt_strengths(
    outcomes: pd.DataFrame, baseline: str, models: Sequence[str], n_boot: int = 500, seed: int = SEED, level: float = LEVEL
) -> pd.DataFrame:
    """Log-strengths relative to the baseline (baseline = 0), bootstrap intervals over prompts, and the
    implied probability of beating the baseline."""
    items = [baseline, *models]
    position = {m: i for i, m in enumerate(items)}
    if outcomes.empty:
        return pd.DataFrame(columns=STRENGTH_COLUMNS)
    by_prompt = {
        p: [(position[m], 0, o) for m, o in zip(g["model_id"], g["outcome"])]
        for p, g in outcomes.groupby("prompt_id", sort=False)
    }
    prompts = list(by_prompt)

    def fit(chosen: Sequence[str]) -> np.ndarray:
        theta = bradley_terry([c for p in chosen for c in by_prompt[p]], len(items))
        relative: np.ndarray = theta - theta[0]
        return relative

    point = fit(prompts)
    rng = np.random.default_rng(seed)
    boots = np.array([fit([prompts[k] for k in rng.integers(0, len(prompts), len(prompts))]) for _ in range(n_boot)])
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha], axis=0)
    return pd.DataFrame(
        [
            {
                "model_id": m,
                "strength": float(point[i]),
                "strength_low": float(low[i]),
                "strength_high": float(high[i]),
                "p_beats_baseline": float(1 / (1 + math.exp(-point[i]))),
            }
            for i, m in enumerate(items)
        ],
        columns=STRENGTH_COLUMNS,
    )


def rubric_paired(
    scores: pd.DataFrame, models: Sequence[str], n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> pd.DataFrame:
    """Every pair of models (a before b in ``models``) on the prompts the judge scored for both, as the other
    metrics' paired comparisons (``stats.frames.paired_comparisons``): the mean score difference a − b with
    a paired-bootstrap interval, the paired sign-flip permutation test, Holm's adjustment over the pairs,
    and ``better`` (a higher score is better) when significant. ``scores``: model_id, prompt_id, score."""
    if scores.empty or len(models) < 2:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    table = scores.pivot_table(index="prompt_id", columns="model_id", values="score", aggfunc="first")
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :] if a in table and b in table]
    tests = paired_bootstraps(
        [(table[a].to_numpy(float), table[b].to_numpy(float), False) for a, b in pairs], n_boot=n_boot, seed=seed, level=level
    )
    rows = [{"metric": "judge_score", "model_a": a, "model_b": b, **test} for (a, b), test in zip(pairs, tests)]
    if not rows:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows])):
        row["p_holm"] = adjusted
        row["significant"] = bool(adjusted < 1 - level)  # NaN (no test) compares False
        row["better"] = (row["model_a"] if row["diff"] > 0 else row["model_b"]) if row["significant"] else None
    frame = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    frame["better"] = pd.Series([r["better"] for r in rows], dtype=object)
    return frame.astype({"n": int, "significant": bool})


# ---------------------------------------------------------------------------------------------
# Reliability


def _rate(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else math.nan


def position_bias_p(first: int, n: int) -> float:
    """Two-sided exact binomial p-value of ``first`` first-position choices in ``n`` decisive verdicts
    against a fair judge's ½ (scipy's binomtest); NaN without decisive verdicts."""
    if n == 0:
        return math.nan
    from scipy.stats import binomtest

    return float(binomtest(first, n, 0.5).pvalue)


def pairwise_reliability(
    outcomes: pd.DataFrame,
    counts: dict[str, Any],
    per_prompt: pd.DataFrame,
    baseline: str,
    reference_metric: str | None,
    min_consistency: float,
) -> JudgeReliability:
    both = (
        outcomes.pivot_table(index=["model_id", "prompt_id"], columns="order", values="outcome", aggfunc="first")
        if len(outcomes)
        else pd.DataFrame()
    )
    if len(both) and {"first", "second"} <= set(both.columns):
        both = both.dropna(subset=["first", "second"])
        consistent = both["first"] == both["second"]
    else:
        consistent = pd.Series(dtype=bool)
    decisive = outcomes[outcomes["outcome"] != 0.5]
    shown_first_won = (decisive["order"] == "first") == (decisive["outcome"] == 1.0)
    differ = decisive[decisive["len_model"] != decisive["len_baseline"]]
    longer_won = (differ["len_model"] > differ["len_baseline"]) == (differ["outcome"] == 1.0)
    advantage = (outcomes["len_model"] - outcomes["len_baseline"]).astype(float)
    corr = float(advantage.corr(outcomes["outcome"].astype(float), method="spearman")) if len(outcomes) > 2 else math.nan
    agreement, agreement_n = _reference_agreement(outcomes, per_prompt, baseline, reference_metric)
    return JudgeReliability(
        judgements=len(outcomes),
        expected=counts["expected"],
        unparsed=counts["unparsed"],
        failed=counts["failed"],
        consistency=_rate(consistent),
        consistency_n=len(consistent),
        tie_rate=_rate(outcomes["outcome"] == 0.5),
        first_position_rate=_rate(shown_first_won),
        longer_wins_rate=_rate(longer_won),
        length_correlation=corr if not (isinstance(corr, float) and math.isnan(corr)) else math.nan,
        reference_metric=reference_metric,
        reference_agreement=agreement,
        reference_n=agreement_n,
        min_consistency=min_consistency,
        first_position_n=len(shown_first_won),
        first_position_p=position_bias_p(int(shown_first_won.sum()), len(shown_first_won)),
    )


def _reference_agreement(
    outcomes: pd.DataFrame, per_prompt: pd.DataFrame, baseline: str, metric: str | None
) -> tuple[float, int]:
    if metric is None or metric not in per_prompt or outcomes.empty:
        return math.nan, 0
    value = {(m, p): v for m, p, v in zip(per_prompt["model_id"], per_prompt["prompt_id"], per_prompt[metric])}
    agree = []
    for (model, prompt), group in outcomes.groupby(["model_id", "prompt_id"], sort=False):
        mine, base = value.get((model, prompt), math.nan), value.get((baseline, prompt), math.nan)
        if math.isnan(mine) or math.isnan(base) or mine == base:
            continue
        score = float(group["outcome"].mean())
        agree.append((score > 0.5) == (mine > base) and score != 0.5)
    return (_rate(pd.Series(agree, dtype=bool)), len(agree))


def reference_metric_of(per_prompt: pd.DataFrame) -> str | None:
    """The first reference metric (registry order) whose values differ somewhere in the per-prompt frame
    (a metric that is the same for every answer, e.g. exact match on free text, cannot agree or disagree)."""
    from reportgen.stats.metrics import metrics_of_kind

    for metric in metrics_of_kind("reference"):
        if metric.name in per_prompt and per_prompt[metric.name].dropna().nunique() > 1:
            return metric.name
    return None


# ---------------------------------------------------------------------------------------------
# One judge


def judge_comparison(
    judge: "JudgeConfig",
    judgements: pd.DataFrame,
    per_prompt: pd.DataFrame,
    model_order: Sequence[str],
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> JudgedComparison:
    """Everything the report and the terminal say about one judge."""
    rows = current_judgements(judgements, judge.id)
    answered = set(per_prompt.loc[~per_prompt["failed"].astype(bool), "model_id"]) if len(per_prompt) else set()
    chosen = [m for m in (judge.models or model_order) if m in answered]
    name = judge.name or judge.model or judge.id
    metric = reference_metric_of(per_prompt)
    if judge.mode == "pairwise":
        baseline = judge.baseline or model_order[0]
        models = [m for m in chosen if m != baseline]
        outcomes, counts = pairwise_outcomes(rows, per_prompt, baseline, models)
        result = JudgedComparison(judge.id, name, "pairwise", baseline)
        result.rates = win_rates(outcomes, models, n_boot, seed)
        result.strengths = bt_strengths(outcomes, baseline, models, n_boot=min(n_boot, 500), seed=seed)
        result.reliability = pairwise_reliability(outcomes, counts, per_prompt, baseline, metric, judge.min_consistency)
        result.samples = outcomes
        return result
    return _rubric(judge, name, rows, per_prompt, chosen, metric, n_boot, seed)


def _rubric(
    judge: "JudgeConfig",
    name: str,
    rows: pd.DataFrame,
    per_prompt: pd.DataFrame,
    models: Sequence[str],
    metric: str | None,
    n_boot: int,
    seed: int,
) -> JudgedComparison:
    answers = _answers(per_prompt)
    index = {(p, a): r for p, a, r in zip(rows["prompt_id"], rows["hash_a"], rows.to_dict("records"))} if len(rows) else {}
    records, counts = [], {"expected": 0, "unparsed": 0, "failed": 0}
    for (model, prompt), text in answers.items():
        if model not in models:
            continue
        counts["expected"] += 1
        row = index.get((prompt, answer_hash(text)))
        if row is None:
            continue
        if row["status"] != "ok":
            counts["unparsed" if row["status"] == "unparsed" else "failed"] += 1
            continue
        records.append(
            {"model_id": model, "prompt_id": prompt, "score": float(row["score"]), "len_model": len(text), "raw": row["raw"]}
        )
    scores = pd.DataFrame(records, columns=["model_id", "prompt_id", "score", "len_model", "raw"])
    table = []
    for model in models:
        values = scores.loc[scores["model_id"] == model, "score"].to_numpy(dtype=float)
        mean, low, high = bootstrap_ci(values, n_boot, seed)
        table.append({"model_id": model, "n": len(values), "mean": mean, "ci_low": low, "ci_high": high})
    agreement, agreement_n = math.nan, 0
    if metric is not None and len(scores):
        merged = scores.merge(per_prompt[["model_id", "prompt_id", metric]], on=["model_id", "prompt_id"]).dropna()
        if len(merged) > 2:
            agreement, agreement_n = float(merged["score"].corr(merged[metric], method="spearman")), len(merged)
    reliability = JudgeReliability(
        judgements=len(scores),
        expected=counts["expected"],
        unparsed=counts["unparsed"],
        failed=counts["failed"],
        consistency=math.nan,
        consistency_n=0,
        tie_rate=math.nan,
        first_position_rate=math.nan,
        longer_wins_rate=math.nan,
        length_correlation=float(scores["score"].corr(scores["len_model"].astype(float), method="spearman"))
        if len(scores) > 2
        else math.nan,
        reference_metric=metric,
        reference_agreement=agreement,
        reference_n=agreement_n,
        min_consistency=judge.min_consistency,
        mode="rubric",
    )
    result = JudgedComparison(
        judge.id,
        name,
        "rubric",
        None,
        rubric=pd.DataFrame(table, columns=RUBRIC_COLUMNS),
        paired=rubric_paired(scores, models, n_boot, seed),
        reliability=reliability,
    )
    result.samples = scores
    return result


RELIABILITY_COLUMNS = [
    "judge_id",
    "mode",
    "baseline",
    "judgements",
    "expected",
    "unparsed",
    "failed",
    "consistency",
    "consistency_n",
    "min_consistency",
    "reliable",
    "tie_rate",
    "first_position_rate",
    "first_position_p",
    "longer_wins_rate",
    "length_correlation",
    "reference_metric",
    "reference_agreement",
    "reference_n",
]


def judged_frames(judged: Sequence[JudgedComparison]) -> dict[str, pd.DataFrame]:
    """The judged comparisons as flat tables (a ``judge_id`` column each), for JSON, CSV and the terminal."""

    def tagged(frame: pd.DataFrame, comparison: JudgedComparison) -> pd.DataFrame:
        return frame.assign(judge_id=comparison.judge_id)[["judge_id", *frame.columns]]

    rates = [tagged(c.rates, c) for c in judged if c.mode == "pairwise" and len(c.rates)]
    strengths = [tagged(c.strengths, c) for c in judged if c.mode == "pairwise" and len(c.strengths)]
    rubric = [tagged(c.rubric, c) for c in judged if c.mode == "rubric" and len(c.rubric)]
    paired = [tagged(c.paired, c) for c in judged if c.mode == "rubric" and len(c.paired)]
    reliability = []
    for c in judged:
        r = c.reliability
        if r is None:
            continue
        reliability.append(
            {
                "judge_id": c.judge_id,
                "mode": c.mode,
                "baseline": c.baseline,
                "judgements": r.judgements,
                "expected": r.expected,
                "unparsed": r.unparsed,
                "failed": r.failed,
                "consistency": r.consistency,
                "consistency_n": r.consistency_n,
                "min_consistency": r.min_consistency,
                "reliable": r.reliable,
                "tie_rate": r.tie_rate,
                "first_position_rate": r.first_position_rate,
                "first_position_p": r.first_position_p,
                "longer_wins_rate": r.longer_wins_rate,
                "length_correlation": r.length_correlation,
                "reference_metric": r.reference_metric,
                "reference_agreement": r.reference_agreement,
                "reference_n": r.reference_n,
            }
        )

    def joined(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["judge_id", *columns])

    return {
        "judge_win_rates": joined(rates, RATE_COLUMNS),
        "judge_strengths": joined(strengths, STRENGTH_COLUMNS),
        "judge_scores": joined(rubric, RUBRIC_COLUMNS),
        "judge_score_tests": joined(paired, PAIRED_COLUMNS),
        "judge_reliability": pd.DataFrame(reliability, columns=RELIABILITY_COLUMNS).astype({"reliable": "boolean"}),
    }
