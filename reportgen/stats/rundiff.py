"""What changed between two runs of one model: quality (paired, when the weights differ), speed and memory.

A run of a model is a row of the store's ``model_runs`` that did work (loaded the model or answered
prompts). The newer side is the model's latest run; the older side is the run before it, or the run
named by ``against``: a run id, or a fingerprint (either may be a prefix), whose latest run is taken.
Answers are stored per fingerprint (a re-run of the same weights replaces them), so two runs of the same
weights differ in speed and memory only.

A speed change counts (``improved`` True or False) only where both runs have timed passes, their ranges
do not overlap, and neither was timed on a busy machine (``BUSY_SHARE``); throughput of the answer runs themselves depends on the answers and is shown, never judged.
Load time and peak memory, one measurement per run, count only beyond ``NOISE_THRESHOLDS``; weight bytes
are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from reportgen.stats.efficiency import (
    NOISE_THRESHOLDS,
    clearly_different,
    ranges_separate,
    speed_figures,
    timed_on_a_busy_machine,
)
from reportgen.stats.frames import in_keys, latest_results, metric_columns, per_prompt_frame
from reportgen.stats.history import run_deltas
from reportgen.study.prompts import PromptSet

# the speed and memory rows: name, and whether a higher value is better
SPEED_MEASURES = (
    ("load_time_s", False),
    ("tokens_per_s", True),
    ("latency_p50_s", False),
    ("peak_memory_bytes", False),
    ("weight_bytes", False),
)


class UnknownRun(LookupError):
    """``against`` names no run or fingerprint of the model (the message lists the known runs)."""


@dataclass
class RunSide:
    run_id: str
    fingerprint: str
    started_at: float

    def as_dict(self) -> dict[str, str | float]:
        return {"run_id": self.run_id, "fingerprint": self.fingerprint, "started_at": self.started_at}


@dataclass
class RunDiff:
    model_id: str
    old: RunSide
    new: RunSide
    quality: pd.DataFrame  # run_delta rows (empty when both runs have the same weights)
    speed: pd.DataFrame  # measure, old, new, change (new − old), ratio (new ÷ old), improved
    notes: list[str] = field(default_factory=list)  # codes: same_weights, no_answers

    @property
    def same_weights(self) -> bool:
        return self.old.fingerprint == self.new.fingerprint

    @property
    def worse(self) -> list[str]:
        rows = [r.metric for r in self.quality.itertuples() if r.improved is False] if len(self.quality) else []
        return rows + [r.measure for r in self.speed.itertuples() if r.improved is False]


def model_runs_of(model_runs: pd.DataFrame, model_id: str) -> pd.DataFrame:
    """The model's runs that did work, oldest first."""
    if model_runs.empty:
        return model_runs
    runs = model_runs[model_runs["model_id"] == model_id]
    did_work = (pd.to_numeric(runs["prompts_run"], errors="coerce").fillna(0) > 0) | runs["load_time_s"].notna()
    return runs[did_work].sort_values("started_at", kind="stable").reset_index(drop=True)


def _pick_against(runs: pd.DataFrame, against: str) -> pd.Series:
    older = runs.iloc[:-1]
    for column in ("run_id", "fingerprint"):
        hits = older[older[column].astype(str).str.startswith(against)]
        if len(hits):
            return hits.iloc[-1]
    known = ", ".join(f"{r.run_id} ({r.fingerprint[:8]})" for r in older.itertuples()) or "none"
    raise UnknownRun(f"no earlier run or fingerprint '{against}'. Known earlier runs: {known}")


def _run_figures(run: pd.Series, speed: pd.DataFrame | None) -> dict[str, float]:
    def number(value: object) -> float:
        try:
            found = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return math.nan
        return found if found == found else math.nan

    figures = {name: number(run.get(name)) for name in ("load_time_s", "peak_memory_bytes", "weight_bytes")}
    seconds, tokens = number(run.get("generate_time_s")), number(run.get("generated_tokens"))
    figures["tokens_per_s"] = tokens / seconds if seconds > 0 and tokens > 0 else math.nan
    figures["latency_p50_s"] = math.nan
    if speed is not None and not speed.empty:
        passes = speed[(speed["run_id"] == run["run_id"]) & (speed["model_id"] == run["model_id"])]
        timed = speed_figures(passes)  # a re-measurement replaces the passes: an older run may have none left
        for name in ("tokens_per_s", "latency_p50_s"):
            for suffix in ("", "_low", "_high"):
                figures[f"{name}_passes{suffix}"] = timed.get(f"{name}{suffix}", math.nan)
        figures["others_cpu_share"] = timed.get("others_cpu_share", math.nan)
    return figures


def _changed(name: str, a: float, b: float, old: dict[str, float], new: dict[str, float], source: str) -> bool:
    """Whether ``a`` → ``b`` is a change beyond the noise (see the module's docstring)."""
    if name in ("tokens_per_s", "latency_p50_s"):
        if source != "passes" or any(timed_on_a_busy_machine(side) for side in (old, new)):
            return False
        ranges = [(side[f"{name}_passes_low"], side[f"{name}_passes_high"]) for side in (old, new)]
        return all(math.isfinite(v) for r in ranges for v in r) and ranges_separate(ranges[0], ranges[1])
    if name in NOISE_THRESHOLDS:
        return clearly_different(name, a, b)
    return a != b


def _speed_rows(old: dict[str, float], new: dict[str, float]) -> pd.DataFrame:
    """Like with like: throughput and latency of the timed passes when both runs have them, else the
    throughput of each run's own generation (and no latency row)."""
    timed = all(not math.isnan(side.get("tokens_per_s_passes", math.nan)) for side in (old, new))
    rows = []
    for name, higher_is_better in SPEED_MEASURES:
        source = "run"
        a, b = old[name], new[name]
        if name in ("tokens_per_s", "latency_p50_s") and timed:
            a, b, source = old[f"{name}_passes"], new[f"{name}_passes"], "passes"
        if math.isnan(a) and math.isnan(b):
            continue
        change = b - a
        ratio = b / a if a and not math.isnan(a) and not math.isnan(b) else math.nan
        changed = not math.isnan(change) and change != 0 and _changed(name, a, b, old, new, source)
        improved = (change > 0) == higher_is_better if changed else None
        rows.append(
            {"measure": name, "old": a, "new": b, "change": change, "ratio": ratio, "improved": improved, "source": source}
        )
    return pd.DataFrame(rows, columns=["measure", "old", "new", "change", "ratio", "improved", "source"])


def run_diff(
    results: pd.DataFrame,
    model_runs: pd.DataFrame,
    speed: pd.DataFrame | None,
    prompt_set: PromptSet,
    model_id: str,
    against: str | None = None,
) -> RunDiff | None:
    """The model's latest run against the one before it (or ``against``); None with fewer than two runs.
    Raises :class:`UnknownRun` when ``against`` matches nothing."""
    runs = model_runs_of(model_runs, model_id)
    if len(runs) < 2:
        if against is not None and len(runs):
            raise UnknownRun(f"no earlier run or fingerprint '{against}': the model has a single run ({runs.iloc[-1]['run_id']})")
        return None
    new = runs.iloc[-1]
    old = _pick_against(runs, against) if against is not None else runs.iloc[-2]
    sides = [RunSide(str(r["run_id"]), str(r["fingerprint"]), float(r["started_at"])) for r in (old, new)]
    notes: list[str] = []
    quality = pd.DataFrame()
    if sides[0].fingerprint == sides[1].fingerprint:
        notes.append("same_weights")  # the stored answers are the same: only speed and memory can differ
    else:
        frames = []
        for side in sides:
            rows = latest_results(results, {model_id: side.fingerprint}) if len(results) else results
            rows = rows[in_keys(rows["prompt_id"], {p.id for p in prompt_set.prompts})] if len(rows) else rows
            frames.append(per_prompt_frame(rows, prompt_set) if len(rows) else pd.DataFrame())
        if all(len(f) for f in frames):
            names = [m for m in metric_columns(frames[1]) if m in frames[0].columns]
            quality = pd.DataFrame(run_deltas(frames[0], frames[1], names))
        else:
            notes.append("no_answers")  # one side has no stored answers to compare
    speed_rows = _speed_rows(_run_figures(old, speed), _run_figures(new, speed))
    return RunDiff(model_id, sides[0], sides[1], quality, speed_rows, notes)
