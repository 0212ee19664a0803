"""Variants of one model: pairs of models of the study built from the same source that differ in one
respect (an adapter, the runtime: backend / precision / quantization, or the decoding settings), and
what that one difference changed in the measured results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reportgen.analysis.findings import Finding
from reportgen.analysis.measured import (
    efficiency_rows,
    higher_is_better,
    means,
    no_throughput,
    paired_difference,
    quality_metrics,
)
from reportgen.format import finite

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.specs.extract import ModelSpec
    from reportgen.study.config import ModelConfig, Study

__all__ = ["ModelPair", "change", "model_pairs", "output_agreement", "pair_finding", "runtime"]


@dataclass(frozen=True)
class ModelPair:
    """Two models of the study built from the same source that differ in one respect.

    kind: "adapter" (the variant adds an adapter), "runtime" (another backend, dtype or quantization),
    "decoding" (other generation settings). base: the model without the change; variant: with it.
    """

    kind: str
    base: str
    variant: str


def _clear(column: str, base: dict[str, Any], variant: dict[str, Any]) -> bool:
    """Whether base and variant differ on ``column`` beyond the noise: timed passes' ranges apart (speed), or
    more than the noise threshold (memory); a speed without timed passes is never a clear difference."""
    from reportgen.stats.efficiency import clearly_different, ranges_separate

    if column == "tokens_per_s":
        ranges = [(r.get("tokens_per_s_low"), r.get("tokens_per_s_high")) for r in (base, variant)]
        if not all(finite(x) for r in ranges for x in r):
            return False
        return ranges_separate(*[(float(r[0]), float(r[1])) for r in ranges])  # type: ignore[arg-type]
    return clearly_different(column, float(base[column]), float(variant[column]))


def _differences(study: Study, a: ModelConfig, b: ModelConfig) -> set[str]:
    kinds = set()
    if a.adapter != b.adapter:
        kinds.add("adapter")
    if a.effective_backend != b.effective_backend or a.dtype != b.dtype or a.quantization != b.quantization:
        kinds.add("runtime")
    if study.generation_for(a).cache_dict() != study.generation_for(b).cache_dict():
        kinds.add("decoding")
    return kinds


def model_pairs(study: Study) -> list[ModelPair]:
    """Pairs of models with the same source that differ in exactly one respect (see ModelPair)."""
    out: list[ModelPair] = []
    models = list(study.models)
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            if a.source is None or a.source != b.source:
                continue
            kinds = _differences(study, a, b)
            if len(kinds) != 1:
                continue
            kind = kinds.pop()
            base, variant = a, b
            if kind == "adapter" and a.adapter is not None and b.adapter is None:
                base, variant = b, a
            elif kind == "decoding" and study.generation_for(a).do_sample and not study.generation_for(b).do_sample:
                base, variant = b, a
            elif kind == "runtime" and a.effective_backend != "transformers" and b.effective_backend == "transformers":
                base, variant = b, a
            out.append(ModelPair(kind, base.id, variant.id))
    return out


def runtime(model: ModelConfig, spec: ModelSpec | None = None, precision: str | None = None) -> dict[str, Any]:
    """How a model ran: its backend, and the precision it ran at (``precision``: measured, else configured)
    or the bitsandbytes bits it was quantized to."""
    out: dict[str, Any] = {"backend": model.effective_backend, "precision": None, "bits": None}
    if precision:
        out["precision"] = precision
    elif model.quantization is not None and model.quantization.bits:
        out["bits"] = model.quantization.bits
    elif model.effective_backend == "llamacpp" and spec is not None and spec.source == "gguf" and spec.dtype:
        out["precision"] = spec.dtype
    elif model.dtype != "auto":
        out["precision"] = model.dtype
    return out


def output_agreement(tables: Any, a: str, b: str) -> tuple[int, int]:
    """(prompts where a and b gave the identical output, prompts both answered)."""
    frame = tables.per_prompt
    mine = frame[(frame["model_id"] == a) & ~frame["failed"].astype(bool)].set_index("prompt_id")["output"]
    theirs = frame[(frame["model_id"] == b) & ~frame["failed"].astype(bool)].set_index("prompt_id")["output"]
    shared = [p for p in mine.index if p in theirs.index]
    same = sum(1 for p in shared if str(mine[p]).strip() == str(theirs[p]).strip())
    return same, len(shared)


def change(tables: Any, metric: str, base: str, variant: str) -> dict[str, Any] | None:
    """``metric`` from ``base`` to ``variant``: both means, and the paired test of the change when there is one.

    ``verdict``: better / worse (significant, by the metric's direction), changed (significant, no
    direction), not significant; absent without a test. Significant: the Holm-adjusted p-value (``p_holm``,
    over ``comparisons`` pairs of the metric) is below 0.05; ``ci_low`` / ``ci_high`` are the unadjusted
    paired-bootstrap interval of the change.
    """
    rows = means(tables, metric)
    if base not in rows or variant not in rows:
        return None
    numbers: dict[str, Any] = {"metric": metric, "base": float(rows[base]["mean"]), "variant": float(rows[variant]["mean"])}
    test = paired_difference(tables, metric, variant, base)
    if test is None:
        return numbers
    numbers.update(
        diff=test["diff"],
        ci_low=test["ci_low"],
        ci_high=test["ci_high"],
        n_paired=test["n"],
        p_value=test["p_value"],
        p_holm=test["p_holm"],
        comparisons=test["comparisons"],
        significant=test["significant"],
    )
    if test["significant"]:
        higher = higher_is_better(metric)
        numbers["verdict"] = "changed" if higher is None else ("better" if (test["diff"] > 0) == higher else "worse")
    else:
        numbers["verdict"] = "not significant"
    return numbers


def _shown_metrics(tables: Any, pair: ModelPair, headline: str | None) -> tuple[list[str], list[str]]:
    """(the quality metrics a pair's finding reports: the headline and any significant change, the rest)."""
    quality = quality_metrics(tables)
    shown = [headline] if headline else []
    for metric in quality:
        if metric == headline:
            continue
        test = paired_difference(tables, metric, pair.variant, pair.base)
        if test is not None and test["significant"]:
            shown.append(metric)
    return shown, [m for m in quality if m not in shown]


def pair_finding(
    study: Study, tables: Any, pair: ModelPair, specs: Mapping[str, ModelSpec], headline: str | None
) -> Finding | None:
    """What the one difference of ``pair`` changed: quality, speed, memory, agreement of the outputs."""
    if pair.base not in set(tables.model_ids) or pair.variant not in set(tables.model_ids):
        return None
    base, variant = study.model(pair.base), study.model(pair.variant)
    rows = efficiency_rows(tables)
    numbers: dict[str, Any] = {"kind": pair.kind, "base": pair.base, "variant": pair.variant}
    if pair.kind == "adapter":
        spec = specs.get(pair.variant)
        numbers["peft_type"] = spec.adapter.peft_type if spec is not None and spec.adapter is not None else None
    elif pair.kind == "runtime":
        for key, model in (("base", base), ("variant", variant)):
            r = rows.get(model.id, {})
            precision = str(r["precision"]) if isinstance(r.get("precision"), str) and r.get("precision") else None
            numbers[f"{key}_runtime"] = runtime(model, specs.get(model.id), precision)
    else:
        g, gb = study.generation_for(variant), study.generation_for(base)
        numbers.update(variant_sampling=g.do_sample, temperature=g.temperature, top_p=g.top_p, base_sampling=gb.do_sample)
    shown, unchanged = _shown_metrics(tables, pair, headline)
    diversity = ("distinct_2", "repeated_4gram_rate") if pair.kind == "decoding" else ()
    for key, metrics in (("changes", shown), ("diversity_changes", diversity)):
        found = [c for metric in metrics if (c := change(tables, metric, pair.base, pair.variant)) is not None]
        numbers.update({c["metric"]: c for c in found})
        numbers[key] = [c["metric"] for c in found]
    numbers["unchanged"] = unchanged if headline else []
    b, v = rows.get(pair.base, {}), rows.get(pair.variant, {})
    missing = {m: why for m, why in no_throughput(rows).items() if m in (pair.base, pair.variant)}
    if missing:
        numbers["speed_missing"] = missing  # a model without throughput: no ratio, and the reason
    for column, key in (("tokens_per_s", "speed"), ("peak_memory_bytes", "memory")):
        if column == "tokens_per_s" and missing:
            continue
        if finite(b.get(column)) and finite(v.get(column)) and float(b[column]) > 0 and float(v[column]) > 0:
            numbers[f"{key}_ratio"] = float(v[column]) / float(b[column])
            numbers[f"{key}_base"], numbers[f"{key}_variant"] = b[column], v[column]
            numbers[f"{key}_clear"] = _clear(column, b, v)
    same, shared = output_agreement(tables, pair.base, pair.variant)
    numbers.update(
        identical_outputs=same,
        shared_prompts=shared,
        greedy=not (study.generation_for(base).do_sample or study.generation_for(variant).do_sample),
    )
    if not (
        numbers["changes"]
        or numbers["diversity_changes"]
        or numbers["unchanged"]
        or "speed_ratio" in numbers
        or "speed_missing" in numbers
        or "memory_ratio" in numbers
        or shared
    ):
        return None
    return Finding(f"variant.{pair.kind}", (pair.base, pair.variant), numbers, pair.kind)
