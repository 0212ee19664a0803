"""Judgement tasks: which answers a judge grades, the judge prompt for each, and the keys they are stored under.

A judgement is keyed on the judge's fingerprint and settings, the prompt (its content hash), both
answers' hashes and the order they were shown in (``hash_a`` is the answer shown first). An answer that
did not change keeps its hash, so after one model is retrained only the pairs with its new answers get
new keys and are judged again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping

from reportgen.judge.templates import JudgeTemplates
from reportgen.study.config import JudgeConfig, Study
from reportgen.study.prompts import PromptSet
from reportgen.util.hashing import hash_json

__all__ = ["JudgeTask", "answer_hash", "judge_settings_hash", "judged_models", "pairwise_tasks", "rubric_tasks"]

Answers = Mapping[str, Mapping[str, str]]  # model id → prompt id → answer text


def answer_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class JudgeTask:
    judge_id: str
    mode: str
    prompt_id: str
    prompt_hash: str
    model_a: str  # the answer shown first (the only one in rubric mode)
    model_b: str | None  # the answer shown second (pairwise)
    hash_a: str
    hash_b: str  # "" in rubric mode
    len_a: int
    len_b: int | None
    text: str  # the rendered judge prompt

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The stored key, less the judge's fingerprint and settings hash."""
        return (self.prompt_id, self.prompt_hash, self.hash_a, self.hash_b)

    @property
    def task_id(self) -> str:
        return "|".join(self.key)


def judge_settings_hash(judge: JudgeConfig, templates: JudgeTemplates) -> str:
    """What besides the judge's weights can change its verdicts: the mode, scale, rubric, token budget and
    the template's text (not its id, name, baseline or threshold: those change what is reported, not a verdict)."""
    name = templates.name_for(judge.mode, judge.template)
    return hash_json(
        {
            "mode": judge.mode,
            "scale": list(judge.scale) if judge.mode == "rubric" else None,
            "rubric": judge.rubric if judge.mode == "rubric" else None,
            "max_new_tokens": judge.max_new_tokens,
            "template": templates.source(name),
        }
    )[:16]


def _question(prompt_set: PromptSet, prompt) -> tuple[str, str | None, str]:
    question = prompt_set.plain_text_for(prompt)
    reference = prompt.all_references[0] if prompt.all_references else None
    return question, reference, hash_json({"question": question, "reference": reference})[:24]


def judged_models(study: Study, judge: JudgeConfig, answered: set[str]) -> tuple[str | None, list[str]]:
    """(baseline, the models compared with it): pairwise; (None, the models scored): rubric."""
    order = [m.id for m in study.models]
    chosen = [m for m in (judge.models or order) if m in answered]
    if judge.mode == "rubric":
        return None, chosen
    baseline = judge.baseline or order[0]
    return baseline, [m for m in chosen if m != baseline]


def pairwise_tasks(
    study: Study, judge: JudgeConfig, prompt_set: PromptSet, answers: Answers, templates: JudgeTemplates
) -> list[JudgeTask]:
    """Both orders of (model, baseline) for every prompt both answered."""
    baseline, models = judged_models(study, judge, set(answers))
    assert baseline is not None  # a pairwise judge always has one
    name = templates.name_for("pairwise", judge.template)
    tasks: list[JudgeTask] = []
    if baseline not in answers:
        return tasks
    for prompt in prompt_set.prompts:
        question, reference, prompt_hash = _question(prompt_set, prompt)
        base = answers[baseline].get(prompt.id)
        if base is None:
            continue
        for model in models:
            answer = answers[model].get(prompt.id)
            if answer is None:
                continue
            for first, second, text_a, text_b in ((model, baseline, answer, base), (baseline, model, base, answer)):
                text = templates.render(
                    name, {"question": question, "reference": reference, "answer_a": text_a, "answer_b": text_b}
                )
                tasks.append(
                    JudgeTask(
                        judge.id,
                        "pairwise",
                        prompt.id,
                        prompt_hash,
                        first,
                        second,
                        answer_hash(text_a),
                        answer_hash(text_b),
                        len(text_a),
                        len(text_b),
                        text,
                    )
                )
    return _unique(tasks)


def rubric_tasks(
    study: Study, judge: JudgeConfig, prompt_set: PromptSet, answers: Answers, templates: JudgeTemplates
) -> list[JudgeTask]:
    _, models = judged_models(study, judge, set(answers))
    name = templates.name_for("rubric", judge.template)
    rubric = judge.rubric or "A good answer is correct, relevant, complete and clear."
    tasks: list[JudgeTask] = []
    for prompt in prompt_set.prompts:
        question, reference, prompt_hash = _question(prompt_set, prompt)
        for model in models:
            answer = answers[model].get(prompt.id)
            if answer is None:
                continue
            text = templates.render(
                name,
                {
                    "question": question,
                    "reference": reference,
                    "answer": answer,
                    "rubric": rubric,
                    "scale_low": judge.scale[0],
                    "scale_high": judge.scale[1],
                },
            )
            tasks.append(
                JudgeTask(
                    judge.id, "rubric", prompt.id, prompt_hash, model, None, answer_hash(answer), "", len(answer), None, text
                )
            )
    return _unique(tasks)


def _unique(tasks: list[JudgeTask]) -> list[JudgeTask]:
    """One task per key: two models with the same answer to a prompt share their judgements."""
    seen: dict[tuple, JudgeTask] = {}
    for task in tasks:
        seen.setdefault(task.key, task)
    return list(seen.values())
