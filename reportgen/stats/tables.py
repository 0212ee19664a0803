"""Every table the report shows and ``reportgen metrics`` prints, computed from one open store."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Mapping

import pandas as pd

from reportgen.stats.bootstrap import N_BOOT, SEED
from reportgen.stats.efficiency import efficiency_frame
from reportgen.stats.frames import (
    all_paired_comparisons,
    category_summary,
    in_keys,
    latest_results,
    metric_columns,
    model_summary,
    per_prompt_frame,
)
from reportgen.stats.imported import coverage, imported_per_prompt, latest_imports
from reportgen.code.jobs import SAMPLE_SEPARATOR, base_prompt_id
from reportgen.stats.code import CODE_RUN_COLUMNS, code_verdicts, with_code_pass
from reportgen.stats.choice import CHOICE_METRICS, choice_frame
from reportgen.stats.lm import lm_frame
from reportgen.stats.passk import PASS_AT_K_COLUMNS, pass_at_k_frame

if TYPE_CHECKING:
    from reportgen.stats.judged import JudgedComparison
    from reportgen.store import Store
    from reportgen.study.config import Study
    from reportgen.study.prompts import PromptSet

# ---------------------------------------------------------------------------------------------
# Everything the report shows


@dataclass
class Tables:
    """The frames ``reportgen metrics`` prints and the report renders (columns: the *_COLUMNS lists)."""

    per_prompt: pd.DataFrame
    summary: pd.DataFrame
    category_summary: pd.DataFrame
    pairwise: pd.DataFrame
    efficiency: pd.DataFrame
    lm: pd.DataFrame
    metrics: list[str] = field(default_factory=list)  # per-prompt metric columns, registry order
    model_ids: list[str] = field(default_factory=list)  # models with results, in study order
    fingerprints: dict[str, str] = field(default_factory=dict)  # model_id → fingerprint reported
    # model_id → the entry whose stored answers it reports (same weights and settings; its own speed, memory, load)
    shared_answers: dict[str, str] = field(default_factory=dict)
    judged: list[JudgedComparison] = field(default_factory=list)  # one per judge of the study (stats.judged)
    # models whose results another tool logged: each one's latest import (store.imports) and, per task, the
    # samples each model has and all share (stats.imported.COVERAGE_COLUMNS)
    imports: pd.DataFrame = field(default_factory=pd.DataFrame)
    coverage: pd.DataFrame = field(default_factory=pd.DataFrame)
    # code prompts: one row per answer with its sandbox verdict (stats.code.CODE_RUN_COLUMNS), pass@k of the samples
    code: pd.DataFrame = field(default_factory=pd.DataFrame)
    pass_at_k: pd.DataFrame = field(default_factory=pd.DataFrame)
    # multiple choice by log-likelihood (stats.choice): one row per (model, item), and the same summaries,
    # category means and paired tests as the per-prompt metrics get (empty without multiple-choice items)
    choices: pd.DataFrame = field(default_factory=pd.DataFrame)
    choice_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    choice_categories: pd.DataFrame = field(default_factory=pd.DataFrame)
    choice_pairwise: pd.DataFrame = field(default_factory=pd.DataFrame)


def _result_fingerprints(results: pd.DataFrame) -> dict[str, str]:
    return dict(zip(results["model_id"].tolist(), results["fingerprint"].tolist())) if len(results) else {}


@dataclass(frozen=True)
class StoreFrames:
    """The stored rows every table is computed from, read from the store at once."""

    results: pd.DataFrame
    model_runs: pd.DataFrame
    runs: pd.DataFrame
    speed: pd.DataFrame
    loglik: pd.DataFrame
    judgements: pd.DataFrame
    imports: pd.DataFrame  # another tool's logs, one row per (model, log content); reportgen.imports
    imported_samples: pd.DataFrame
    code_runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    choices: pd.DataFrame = field(default_factory=pd.DataFrame)

    @classmethod
    def read(cls, store: "Store") -> "StoreFrames":
        return cls(
            results=store.results_frame(),
            model_runs=store.model_runs_frame(),
            runs=store.runs_frame(),
            speed=store.speed_frame(),
            loglik=store.loglik_frame(),
            judgements=store.judgements_frame(),
            imports=store.imports_frame(),
            imported_samples=store.imported_samples_frame(),
            code_runs=store.code_runs_frame(),
            choices=store.choices_frame(),
        )

    def named(self) -> dict[str, pd.DataFrame]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def compute_tables(
    store: "Store",
    study: "Study",
    prompt_set: "PromptSet | None",
    fingerprints: Mapping[str, str | None] | None = None,
    bandwidth_bytes_per_s: float | Mapping[str, float] | None = None,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> Tables:
    """Read the store and compute every table (see :func:`tables_from_frames`)."""
    return tables_from_frames(
        StoreFrames.read(store), study, prompt_set, fingerprints, bandwidth_bytes_per_s, n_boot=n_boot, seed=seed
    )


def tables_from_frames(
    frames: StoreFrames,
    study: "Study",
    prompt_set: "PromptSet | None",
    fingerprints: Mapping[str, str | None] | None = None,
    bandwidth_bytes_per_s: float | Mapping[str, float] | None = None,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> Tables:
    """Every table, for the study's models only, in the study's order, from the stored rows.

    ``fingerprints`` (model_id → fingerprint, from the runner) pins what is reported; by default each
    model's most recent fingerprint. ``bandwidth_bytes_per_s`` defaults to what the runner recorded
    (``model_runs.details`` or the run manifest's ``hardware``); it is never measured here, so
    re-rendering stays byte-identical.
    """
    order = [m.id for m in study.models]
    wanted: dict[str, str | None] = {m: (fingerprints or {}).get(m) for m in order}
    results = latest_results(frames.results, wanted, model_runs=frames.model_runs)
    if prompt_set is not None and len(results):
        results = results[in_keys(results["prompt_id"], {p.id for p in prompt_set.prompts})].reset_index(drop=True)
    per_prompt = with_code_pass(
        per_prompt_frame(results, prompt_set, model_order=order), frames.code_runs, prompt_set, study.code
    )
    imported = imported_per_prompt(frames.imports, frames.imported_samples, order)
    if len(imported):  # models whose results another tool logged: their samples join the same frame
        per_prompt = imported if per_prompt.empty else pd.concat([per_prompt, imported], ignore_index=True)
    names = metric_columns(per_prompt)
    code, pass_at_k = _code_tables(frames, study, prompt_set, per_prompt, wanted, n_boot, seed)
    choices = choice_frame(frames.choices, prompt_set, {**wanted, **_result_fingerprints(results)}, model_order=order)
    return Tables(
        per_prompt=per_prompt,
        summary=model_summary(per_prompt, names, n_boot=n_boot, seed=seed),
        category_summary=category_summary(per_prompt, names, n_boot=n_boot, seed=seed),
        pairwise=all_paired_comparisons(per_prompt, names, n_boot=n_boot, seed=seed),
        efficiency=efficiency_frame(
            results,
            frames.model_runs,
            bandwidth_bytes_per_s=bandwidth_bytes_per_s,
            model_order=order,
            runs=frames.runs,
            speed=frames.speed,
        ),
        lm=lm_frame(frames.loglik, {**wanted, **_result_fingerprints(results)}, n_boot=n_boot, seed=seed, model_order=order),
        metrics=names,
        model_ids=list(dict.fromkeys(per_prompt["model_id"].tolist())),
        fingerprints={
            **_result_fingerprints(results),
            **dict(zip(imported["model_id"], imported["fingerprint"])),
        },
        judged=_judged(frames.judgements, study, per_prompt, order, n_boot, seed),
        shared_answers=_shared_answers(results),
        imports=latest_imports(frames.imports, order),
        coverage=coverage(per_prompt),
        code=code,
        pass_at_k=pass_at_k,
        choices=choices,
        choice_summary=model_summary(choices, CHOICE_METRICS, n_boot=n_boot, seed=seed),
        choice_categories=category_summary(choices, CHOICE_METRICS, n_boot=n_boot, seed=seed),
        choice_pairwise=all_paired_comparisons(choices, CHOICE_METRICS, n_boot=n_boot, seed=seed),
    )


def _code_tables(
    frames: StoreFrames,
    study: "Study",
    prompt_set: "PromptSet | None",
    per_prompt: pd.DataFrame,
    wanted: Mapping[str, str | None],
    n_boot: int,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The verdict of each current answer to a code prompt, and pass@k of the pass@k samples (stored
    under the prompt's id, ``#`` and the sample's number)."""
    if prompt_set is None or not prompt_set.code_prompts or per_prompt.empty:
        return pd.DataFrame(columns=CODE_RUN_COLUMNS), pd.DataFrame(columns=PASS_AT_K_COLUMNS)
    code = code_verdicts(per_prompt, frames.code_runs, prompt_set, study.code)
    samples = pd.DataFrame(columns=PASS_AT_K_COLUMNS)
    if study.code.samples:
        rows = latest_results(frames.results, wanted, model_runs=frames.model_runs)  # sample ids are prompt ids of their own
        ids = {p.id for p in prompt_set.code_prompts}
        rows = rows[rows["prompt_id"].map(lambda pid: SAMPLE_SEPARATOR in pid and base_prompt_id(pid) in ids)]
        answers = pd.DataFrame(
            {
                "model_id": rows["model_id"],
                "prompt_id": rows["prompt_id"],
                "output": rows["text"].fillna(""),
                "failed": rows["finish_reason"] == "error",
            }
        )
        sampled = code_verdicts(answers, frames.code_runs, prompt_set, study.code).dropna(subset=["passed"])
        sampled = sampled.assign(prompt_id=sampled["prompt_id"].map(base_prompt_id))
        samples = pass_at_k_frame(sampled, study.code.k, n_boot=n_boot, seed=seed)
    return code, samples


def _shared_answers(results: pd.DataFrame) -> dict[str, str]:
    """model_id → the other entry that stored every answer it reports (latest_results' ``answered_by``)."""
    if results.empty or "answered_by" not in results:
        return {}
    out = {}
    for model_id, rows in results.groupby("model_id", sort=False):
        owners = set(rows["answered_by"].tolist())
        if model_id not in owners:
            out[str(model_id)] = str(rows["answered_by"].mode().iloc[0])
    return out


def _judged(
    judgements: pd.DataFrame, study: "Study", per_prompt: pd.DataFrame, order: list[str], n_boot: int, seed: int
) -> list[JudgedComparison]:
    """One judged comparison per judge of the study (none without judges or judgements)."""
    if not getattr(study, "judges", ()):
        return []
    from reportgen.stats.judged import judge_comparison

    return [judge_comparison(judge, judgements, per_prompt, order, n_boot=n_boot, seed=seed) for judge in study.judges]
