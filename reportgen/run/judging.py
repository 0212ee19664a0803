"""The judging step: after generation, each judge of the study grades the current answers.

plan (the judge's fingerprint and settings, the tasks for the current answers, what the store holds)
→ execute (load the judge once, generate its verdicts batch by batch) → store (this process alone
writes it). A judgement with a parsed verdict is never redone; failed and unparsed ones are retried.
Answers are the current results of each model: its fingerprint for the current config (from the plan)
and the request hash of the current prompt content and settings.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from reportgen.backends import create_backend
from reportgen.errors import ConfigError, ReportgenError
from reportgen.judge.tasks import JudgeTask, judge_settings_hash, pairwise_tasks, rubric_tasks
from reportgen.judge.templates import JudgeTemplates
from reportgen.judge.verdicts import parse_pairwise, parse_rubric
from reportgen.records import GenerationRequest
from reportgen.run.execute import Progress, _load
from reportgen.run.plan import ModelWork, model_fingerprint, plan_models, select_models
from reportgen.store import Store
from reportgen.study.config import JudgeConfig, Study
from reportgen.study.prompts import PromptSet, study_prompt_set

__all__ = ["JudgeRunSummary", "current_answers", "judge_study"]

log = logging.getLogger(__name__)


@dataclass
class JudgeRunSummary:
    judge_id: str
    fingerprint: str = ""
    total: int = 0
    cached: int = 0
    judged: int = 0
    unparsed: int = 0
    failed: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return self.unparsed + self.failed

    def line(self) -> str:
        if self.error:
            return f"judge {self.judge_id}: FAILED — {self.error}"
        parts = [f"judge {self.judge_id}: {self.total} judgements ({self.judged} judged, {self.cached} stored)"]
        if self.unparsed:
            parts.append(f"{self.unparsed} unparsed verdicts (kept raw, retried on the next run)")
        if self.failed:
            parts.append(f"{self.failed} failed (retried on the next run)")
        return " · ".join(parts)


def current_answers(store: Store, work: list[ModelWork]) -> dict[str, dict[str, str]]:
    """model id → prompt id → the answer stored for the model's current fingerprint and request (failures left out)."""
    frame = store.results_frame()
    answers: dict[str, dict[str, str]] = {}
    for unit in work:
        rows = frame[(frame["fingerprint"] == unit.fingerprint) & (frame["finish_reason"] != "error")]
        mine = {}
        for prompt_id, request_hash, text in zip(rows["prompt_id"], rows["request_hash"], rows["text"]):
            if unit.request_hashes.get(prompt_id) == request_hash:
                mine[prompt_id] = text
        if mine:
            answers.setdefault(unit.model.id, mine)
    return answers


def _tasks(study: Study, judge: JudgeConfig, prompt_set: PromptSet, answers, templates: JudgeTemplates) -> list[JudgeTask]:
    build = pairwise_tasks if judge.mode == "pairwise" else rubric_tasks
    return build(study, judge, prompt_set, answers, templates)


def judge_study(
    study: Study,
    *,
    store: Store,
    work: list[ModelWork] | None = None,
    judge_ids: list[str] | None = None,
    templates_dir: str | Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> list[JudgeRunSummary]:
    """Run every judge (or those named) over the current answers; one summary per judge."""
    judges = list(study.judges)
    if judge_ids:
        unknown = sorted(set(judge_ids) - {j.id for j in judges})
        if unknown:
            raise ConfigError(
                f"--judges: no judge with id {', '.join(unknown)} in {study.path}. Known: {', '.join(j.id for j in judges) or 'none'}"
            )
        judges = [j for j in judges if j.id in judge_ids]
    if not judges:
        return []
    prompt_set = study_prompt_set(study)
    if work is None:
        work = plan_models(store, study, prompt_set, select_models(study, None))
    answers = current_answers(store, work)
    templates = JudgeTemplates(templates_dir)
    run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + "-judge-" + uuid.uuid4().hex[:6]
    summaries = []
    for judge in judges:
        try:
            summaries.append(_run_judge(study, judge, prompt_set, answers, templates, store, run_id, force, progress))
        except ReportgenError as exc:
            summaries.append(JudgeRunSummary(judge.id, error=exc.format_message()))
    return summaries


def _run_judge(
    study: Study,
    judge: JudgeConfig,
    prompt_set: PromptSet,
    answers,
    templates: JudgeTemplates,
    store: Store,
    run_id: str,
    force: bool,
    progress: Progress | None,
) -> JudgeRunSummary:
    model = judge.runnable_model(study)
    backend = create_backend(model)
    fingerprint, _ = model_fingerprint(backend)
    settings_hash = judge_settings_hash(judge, templates)
    tasks = _tasks(study, judge, prompt_set, answers, templates)
    done = set() if force else store.done_judgements(fingerprint, settings_hash)
    pending = [t for t in tasks if t.key not in done]
    summary = JudgeRunSummary(judge.id, fingerprint, len(tasks), cached=len(tasks) - len(pending))
    if not pending:
        return summary
    sampler, load = _load(backend)
    for note in load.notes:
        log.warning("judge %s: %s", judge.id, note)
    try:
        settings = judge.settings()
        requests = {
            t.task_id: GenerationRequest(t.task_id, ({"role": "user", "content": t.text},), t.text, "chat", settings)
            for t in pending
        }
        size = model.batch_size if isinstance(model.batch_size, int) else backend.suggested_batch_size(list(requests.values()))
        task = progress.add_task(f"judge {judge.id}", total=len(pending)) if progress is not None else None
        for start in range(0, len(pending), max(1, size)):
            batch = pending[start : start + max(1, size)]
            results = backend.generate([requests[t.task_id] for t in batch])
            if [r.prompt_id for r in results] != [t.task_id for t in batch]:
                raise ReportgenError(f"judge {judge.id}: the backend returned results out of order")
            rows = [_row(judge, t, r) for t, r in zip(batch, results)]
            store.save_judgements(judge_fingerprint=fingerprint, settings_hash=settings_hash, run_id=run_id, rows=rows)
            summary.judged += sum(row["status"] == "ok" for row in rows)
            summary.unparsed += sum(row["status"] == "unparsed" for row in rows)
            summary.failed += sum(row["status"] == "error" for row in rows)
            if progress is not None and task is not None:
                progress.advance(task, len(batch))
    finally:
        sampler.__exit__(None, None, None)
        backend.close()
    return summary


def _row(judge: JudgeConfig, task: JudgeTask, result) -> dict:
    row = {
        "prompt_id": task.prompt_id,
        "prompt_hash": task.prompt_hash,
        "hash_a": task.hash_a,
        "hash_b": task.hash_b,
        "judge_id": judge.id,
        "mode": judge.mode,
        "model_a": task.model_a,
        "model_b": task.model_b,
        "len_a": task.len_a,
        "len_b": task.len_b,
        "raw": result.text,
        "verdict": None,
        "score": None,
        "error": None,
    }
    if result.failed:
        return {**row, "status": "error", "error": result.error or "generation failed"}
    parsed = parse_pairwise(result.text) if judge.mode == "pairwise" else parse_rubric(result.text, judge.scale)
    if not parsed.ok:
        return {**row, "status": "unparsed", "error": parsed.problem}
    return {**row, "status": "ok", "verdict": parsed.verdict, "score": parsed.score}
