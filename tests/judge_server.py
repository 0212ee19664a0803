"""A deterministic judge on 127.0.0.1: the OpenAI chat protocol of tests/fault_server.py, with answers
chosen per model name.

Study models (``model`` = a key of ``answers``) answer with ``answers[model][marker]`` for the first
marker found in the question. The judge (``model`` = "judge") follows a known rule: it prefers the
answer that contains the reference ("[[A]]" / "[[B]]"), and calls a tie ("[[C]]") when both or neither
do. ``always_a`` simulates position bias (always "[[A]]"); ``unsure`` holds markers whose judgements
get an answer without a verdict (unparseable). Rubric prompts get "Rating: [[9]]" when the answer
contains the reference, else "Rating: [[2]]".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fault_server import FaultServer

_BLOCK = r"\[{name}\]\n(`{{3,}})text\n(.*?)\n\1"


def block(text: str, name: str) -> str | None:
    found = re.search(_BLOCK.format(name=re.escape(name)), text, re.S)
    return found.group(2) if found else None


@dataclass
class JudgeRule:
    answers: dict[str, dict[str, str]]
    always_a: bool = False
    unsure: set[str] = field(default_factory=set)
    judged: list[str] = field(default_factory=list)  # the judge prompts received

    def __call__(self, body: dict, text: str) -> str | None:
        model = body.get("model")
        if model in self.answers:
            for marker, answer in self.answers[model].items():
                if marker in text:
                    return answer
            return "I do not know."
        if model != "judge":
            return None
        self.judged.append(text)
        if any(marker in text for marker in self.unsure):
            return "Both answers have merit; I cannot decide."
        reference = block(text, "Reference answer (correct)") or ""
        if "[Rubric]" in text:
            return (
                "Scored. Rating: [[9]]" if reference and reference in (block(text, "Answer") or "") else "Scored. Rating: [[2]]"
            )
        if self.always_a:
            return "The first one. [[A]]"
        a, b = reference in (block(text, "Answer A") or ""), reference in (block(text, "Answer B") or "")
        return "Verdict: [[A]]" if a and not b else "Verdict: [[B]]" if b and not a else "Equal. [[C]]"


def judge_server(rule: JudgeRule) -> FaultServer:
    return FaultServer(responder=rule)
