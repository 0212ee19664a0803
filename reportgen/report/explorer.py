"""The prompt explorer of report.html: every prompt with every model's answer, as compact JSON for the page.

``explorer_data`` is a pure function of the per-prompt table (``Tables.per_prompt``, the frame every
other results section is computed from), the judges' per-prompt verdicts and the prompt texts. It is
*columnar*: one array per field, indexed by prompt, so a page with 10,000 prompts × 4 models parses in
one ``JSON.parse`` and filters over plain arrays. Text is raw (not escaped): the page's script shows it
with ``textContent`` only; control characters (but tab and line feed) are made visible, as everywhere in the
report (``util.text.visible_controls``). ``script_json`` makes the JSON safe inside ``<script type="application/json">``.

The shape (version 1), documented once here and read by ``templates/explorer.js``::

    v          1
    models     display names, study order ("1. name")
    baseline   index of the baseline model (the first judge's baseline, else model 1)
    metrics    [[key, label, binary (0/1), decimals], ...]: the per-prompt metric columns
    correct    index into metrics of the 0/1 metric that says right or wrong (the headline if 0/1), or -1
    cats       category names; ``cat``: per prompt, an index into cats or -1
    ids, text  per prompt: its id and its text as written ("" when the prompt set could not be read)
    refs       per prompt: its references (a list, empty without)
    fins       finish reasons; per model ``f``: per prompt an index into fins, or -1 (no answer)
    answers    per model: {t: texts, f: finish indexes, n: output tokens (or null),
                           m: per metric a list of values (null: none), loop: prompt indexes that loop}
    judges     [{name, mode ("pairwise" | "rubric"), baseline (model index or -1),
                 v: per model a list of values (null: not judged)}]: pairwise, the model's mean outcome
               against the baseline over both orders (1 preferred, ½ tie, 0 the baseline preferred);
               rubric, the score
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from reportgen import analysis
from reportgen.stats.metrics import METRICS, metric_label
from reportgen.util.text import visible_controls

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from reportgen.stats.tables import Tables
    from reportgen.study.config import Study

__all__ = ["EXPLORER_VERSION", "MAX_ANSWER_CHARS", "explorer_data", "explorer_json", "script_json"]

EXPLORER_VERSION = 1
#: Characters of one answer the explorer keeps (as the samples do); the rest is cut with a note (the store keeps all).
MAX_ANSWER_CHARS = 4000


def _number(value: Any, digits: int = 4) -> float | int | None:
    """A metric value rounded to ``digits`` significant digits (short JSON); None for NaN or a missing value."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(x) or math.isinf(x):
        return None
    rounded = float(f"{x:.{digits}g}")
    return int(rounded) if rounded.is_integer() else rounded


def _numbers(values: Any, digits: int = 4) -> list[float | int | None]:
    """``_number`` of each value of a column (the same results, without a call per value for the missing ones)."""
    import pandas as pd

    array = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    finite = np.isfinite(array)
    distinct, which = np.unique(array[finite], return_inverse=True)  # each distinct value formatted once
    shown = np.empty(len(distinct), dtype=object)
    shown[:] = [_number(x, digits) for x in distinct.tolist()]
    out = np.full(len(array), None, dtype=object)
    out[finite] = shown[which]
    return out.tolist()


def _answer_text(output: Any, failed: bool, error: Any) -> str:
    if failed:
        return visible_controls(str(error)) if isinstance(error, str) and error else "no error message recorded"
    text = "" if output is None else visible_controls(str(output))
    if len(text) > MAX_ANSWER_CHARS:
        cut = len(text) - MAX_ANSWER_CHARS
        text = f"{text[:MAX_ANSWER_CHARS]}\n… {cut:,} more characters not shown (the results store keeps all)."
    return text


def _correct_metric(tables: Tables, metrics: Sequence[str]) -> int:
    """The 0/1 metric that says right or wrong: the headline when it is 0/1, else the first 0/1 reference metric."""
    binary = [m for m in metrics if METRICS.get(m).binary and METRICS.get(m).kind == "reference"]
    headline = analysis.headline_metric(tables)
    chosen = headline if headline in binary else (binary[0] if binary else None)
    return metrics.index(chosen) if chosen is not None else -1


def _judge_values(samples: pd.DataFrame, mode: str, models: Sequence[str], position: Mapping[str, int]) -> list[list]:
    """Per model, per prompt: the mean pairwise outcome over both orders, or the rubric score; None when not judged."""
    values: list[list] = [[None] * len(position) for _ in models]
    if samples is None or samples.empty:
        return values
    column = "outcome" if mode == "pairwise" else "score"
    means = samples.groupby(["model_id", "prompt_id"], sort=False)[column].mean()
    row = {m: i for i, m in enumerate(models)}
    for (model, prompt), value in means.items():
        if model in row and prompt in position:
            values[row[model]][position[prompt]] = _number(value)
    return values


def explorer_data(study: Study, tables: Tables, prompts: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The explorer's data (see the module docstring): every prompt of the per-prompt table, every model."""
    frame = tables.per_prompt
    models = list(tables.model_ids)
    names = {m.id: " ".join(m.name.split()) for m in study.models}
    numbers = {m.id: i for i, m in enumerate(study.models, 1)}
    prompt_ids = list(dict.fromkeys(frame["prompt_id"].tolist())) if len(frame) else []
    position = {p: i for i, p in enumerate(prompt_ids)}
    metrics = list(tables.metrics)
    firsts = frame.drop_duplicates("prompt_id").set_index("prompt_id") if len(frame) else frame
    cats: list[str] = []
    cat_index: list[int] = []
    first_categories = firsts["category"].tolist() if len(frame) else []
    first_references = firsts["references"].tolist() if len(frame) else []
    for category in first_categories:  # firsts is in prompt_ids' order (drop_duplicates keeps the first)
        if isinstance(category, str) and category:
            if category not in cats:
                cats.append(category)
            cat_index.append(cats.index(category))
        else:
            cat_index.append(-1)
    fins: dict[str, int] = {}  # finish reason → its index, in order of appearance
    answers = []
    for model in models:
        mine = frame[frame["model_id"] == model]
        places = [position[p] for p in mine["prompt_id"].tolist()]
        failed = [bool(f) for f in mine["failed"].tolist()]
        errors = mine["error"].tolist() if "error" in mine else [None] * len(mine)
        texts: list[str | None] = [None] * len(prompt_ids)
        finish: list[int] = [-1] * len(prompt_ids)
        tokens: list[Any] = [None] * len(prompt_ids)
        for i, output, fail, error, reason, count in zip(
            places, mine["output"].tolist(), failed, errors, mine["finish_reason"].tolist(), _numbers(mine["output_tokens"])
        ):
            texts[i] = _answer_text(output, fail, error)
            finish[i] = fins.setdefault(str(reason), len(fins))
            tokens[i] = None if fail else count
        scores: list[list[Any]] = []
        for metric in metrics:
            column: list[Any] = [None] * len(prompt_ids)
            for i, value in zip(places, _numbers(mine[metric]) if metric in mine else [None] * len(mine)):
                column[i] = value
            scores.append(column)
        loops: list[int] = []
        if "repeated_4gram_rate" in mine:
            loops = [
                i
                for i, rate in zip(places, _numbers(mine["repeated_4gram_rate"]))
                if rate is not None and rate > analysis.LOOP_PROMPT
            ]
        answers.append({"t": texts, "f": finish, "n": tokens, "m": scores, "loop": loops})
    judges = []
    for judged in getattr(tables, "judged", None) or []:
        judges.append(
            {
                "name": " ".join(str(judged.judge_name).split()),
                "mode": judged.mode,
                "baseline": models.index(judged.baseline) if judged.baseline in models else -1,
                "v": _judge_values(judged.samples, judged.mode, models, position),
            }
        )
    baseline = next((j["baseline"] for j in judges if j["baseline"] >= 0), 0)
    prompts = prompts or {}
    return {
        "v": EXPLORER_VERSION,
        "models": [f"{numbers.get(m, i + 1)}. {names.get(m, m)}" for i, m in enumerate(models)],
        "baseline": baseline,
        "metrics": [[m, metric_label(m), int(METRICS.get(m).binary), 0 if METRICS.get(m).binary else 3] for m in metrics],
        "correct": _correct_metric(tables, metrics),
        "cats": cats,
        "cat": cat_index,
        "ids": prompt_ids,
        "text": [visible_controls(prompts.get(p, "")) for p in prompt_ids],
        "refs": [[visible_controls(str(r)) for r in references or ()] for references in first_references],
        "fins": list(fins),
        "answers": answers,
        "judges": judges,
    }


def explorer_json(data: Mapping[str, Any]) -> str:
    """The data as compact JSON (no spaces; non-ASCII text kept as it is)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def script_json(text: str) -> str:
    """JSON safe inside a ``<script type="application/json">``: ``<``, ``>`` and ``&`` as ``\\u`` escapes, so no
    answer can close the element or open a comment (JSON.parse reads them back unchanged)."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
