"""Code prompts in the tables: the sandbox's stored verdicts joined to the answers they judged.

Pure: from the per-prompt frame, the stored ``code_runs`` rows and the study's ``code`` settings. Each
answer to a code prompt is turned into its job again (``reportgen.code.jobs``: extraction is
deterministic), and its (program, limits) key finds its verdict. ``code_pass`` is 1 or 0 on code prompts
with a stored verdict, NaN elsewhere (a text prompt, a failed generation, or an answer not run yet).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reportgen.code.jobs import base_prompt_id, job_for
from reportgen.study.codeconfig import CodeConfig
from reportgen.study.prompts import PromptSet

__all__ = ["CODE_RUN_COLUMNS", "code_verdicts", "with_code_pass"]

CODE_RUN_COLUMNS = ["model_id", "prompt_id", "passed", "reason", "detail", "how", "seconds", "isolation"]


def code_verdicts(answers: pd.DataFrame, code_runs: pd.DataFrame, prompt_set: PromptSet, config: CodeConfig) -> pd.DataFrame:
    """One row per answer to a code prompt (``answers``: ``model_id``, ``prompt_id``, ``output``, ``failed``)
    with its stored verdict (``passed`` NaN when it was not run)."""
    prompts = {p.id: p for p in prompt_set.code_prompts}
    stored = {
        (h, lh): row
        for h, lh, row in zip(code_runs.get("program_hash", []), code_runs.get("limits_hash", []), code_runs.to_dict("records"))
    }
    rows = []
    for model_id, prompt_id, output, failed in zip(
        answers["model_id"], answers["prompt_id"], answers["output"], answers["failed"]
    ):
        base = base_prompt_id(str(prompt_id))
        if base not in prompts or failed:
            continue
        job = job_for(str(output), prompts[base], config)
        run = stored.get(job.key)
        rows.append(
            {
                "model_id": model_id,
                "prompt_id": prompt_id,
                "passed": float(run["passed"]) if run else np.nan,
                "reason": run["reason"] if run else "not run",
                "detail": run["detail"] if run else "",
                "how": job.how,
                "seconds": float(run["seconds"]) if run else np.nan,
                "isolation": run["isolation"] if run else "",
            }
        )
    return pd.DataFrame(rows, columns=CODE_RUN_COLUMNS)


def with_code_pass(
    per_prompt: pd.DataFrame, code_runs: pd.DataFrame, prompt_set: PromptSet | None, config: CodeConfig
) -> pd.DataFrame:
    """The per-prompt frame with a ``code_pass`` column when the prompt set has code prompts (else unchanged)."""
    if prompt_set is None or not prompt_set.code_prompts or per_prompt.empty:
        return per_prompt
    verdicts = code_verdicts(per_prompt, code_runs, prompt_set, config)
    passed = {(m, p): v for m, p, v in zip(verdicts["model_id"], verdicts["prompt_id"], verdicts["passed"])}
    values = [passed.get((m, p), np.nan) for m, p in zip(per_prompt["model_id"], per_prompt["prompt_id"])]
    return per_prompt.assign(code_pass=np.asarray(values, dtype=float))
