"""Run the answers to code prompts in the sandbox, at run time, into the store (never while rendering).

A study whose prompt set has code prompts is refused unless running model-written code is allowed (the
study's ``code.execute``, or ``--execute-code``). After the models have answered, every current answer
to a code prompt (the run's fingerprints and request hashes, pass@k samples included) becomes a job
(``reportgen.code.jobs``); jobs whose (program, limits) key is stored are not run again; the others run
``code.workers`` at a time and their verdicts are committed together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from reportgen.code.jobs import CodeJob, base_prompt_id, job_for
from reportgen.code.sandbox import isolation, run_programs
from reportgen.errors import ConfigError
from reportgen.store import Store
from reportgen.study.config import Study
from reportgen.study.prompts import PromptSet

if TYPE_CHECKING:
    from reportgen.run.plan import ModelWork

__all__ = ["CodeRunSummary", "execute_code", "require_opt_in"]


def require_opt_in(study: Study, prompt_set: PromptSet, allowed: bool) -> None:
    """A ConfigError (exit 2) when the prompt set has code prompts and running their answers is not allowed."""
    code = prompt_set.code_prompts
    if code and not (allowed or study.code.execute):
        raise ConfigError(
            f"{study.where('code')}: the prompt set has {len(code)} code prompt{'s' if len(code) != 1 else ''} "
            f"({code[0].id}{', …' if len(code) > 1 else ''}) whose answers are run as Python, and running model-written "
            "code is off. Fix: set 'code: {execute: true}' in the study config (or pass --execute-code) to run them "
            "in the sandbox, or remove the code prompts"
        )


@dataclass
class CodeRunSummary:
    answers: int  # current answers to code prompts (samples included)
    run: int  # programs run now
    cached: int  # programs whose verdict was stored
    passed: int  # of those run now
    isolation: str

    def line(self) -> str:
        return (
            f"code: {self.answers} answers ({self.run} run, {self.cached} cached; {self.passed} of {self.run} passed) · "
            f"sandbox: {self.isolation}"
        )


def current_jobs(store: Store, study: Study, prompt_set: PromptSet, work: list["ModelWork"]) -> list[CodeJob]:
    """One job per current answer to a code prompt (answers that failed to generate are not run)."""
    prompts = {p.id: p for p in prompt_set.code_prompts}
    wanted = {(w.fingerprint, pid, h) for w in work for pid, h in w.request_hashes.items() if base_prompt_id(pid) in prompts}
    results = store.results_frame()
    jobs = []
    for fingerprint, prompt_id, request_hash, text, finish in zip(
        results["fingerprint"], results["prompt_id"], results["request_hash"], results["text"], results["finish_reason"]
    ):
        if finish != "error" and (fingerprint, prompt_id, request_hash) in wanted:
            jobs.append(job_for(text or "", prompts[base_prompt_id(prompt_id)], study.code))
    return jobs


def execute_code(store: Store, study: Study, prompt_set: PromptSet, work: list["ModelWork"], run_id: str) -> CodeRunSummary:
    """Run the current answers' programs not yet stored; commit their verdicts."""
    jobs = current_jobs(store, study, prompt_set, work)
    done = store.done_code_runs()
    pending = list({job.key: job for job in jobs if job.key not in done}.values())
    described = isolation().describe()
    verdicts = run_programs([(job.program, job.limits) for job in pending], workers=study.code.workers)
    rows = [
        {
            "program_hash": job.program_hash,
            "limits_hash": job.limits_hash,
            "passed": int(v.passed),
            "reason": v.reason,
            "detail": v.detail,
            "output": v.output,
            "seconds": v.seconds,
            "isolation": described,
        }
        for job, v in zip(pending, verdicts)
    ]
    if rows:
        store.save_code_runs(run_id=run_id, rows=rows)
    return CodeRunSummary(len(jobs), len(pending), len(jobs) - len(pending), sum(v.passed for v in verdicts), described)
