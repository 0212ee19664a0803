"""Model-graded comparisons: judge prompts (Jinja templates), strict verdict parsing, judgement keys.

A judge grades answers already in the store: ``pairwise`` (a model's answer against the baseline's, in
both orders) or ``rubric`` (one answer on a scale). The run layer calls the judge model and writes the
judgements; the statistics (win rates, Bradley–Terry strengths, the judge's reliability) live in
``reportgen.stats.judged``.
"""

from reportgen.judge.tasks import JudgeTask, judge_settings_hash, pairwise_tasks, rubric_tasks
from reportgen.judge.templates import JudgeTemplates, fenced
from reportgen.judge.verdicts import Verdict, parse_pairwise, parse_rubric, verdict_grammar

__all__ = [
    "JudgeTask",
    "JudgeTemplates",
    "Verdict",
    "fenced",
    "judge_settings_hash",
    "pairwise_tasks",
    "parse_pairwise",
    "parse_rubric",
    "rubric_tasks",
    "verdict_grammar",
]
