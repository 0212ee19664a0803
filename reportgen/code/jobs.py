"""One answer to a code prompt → the job the sandbox runs: the program, its limits and their content keys.

A stored verdict is keyed by (program hash, limits hash): the same answer to the same tests under the
same limits is run once, ever; a changed answer, test or limit is run again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from reportgen.code.extract import extract_code, program, program_hash
from reportgen.code.sandbox import MiB, Limits
from reportgen.study.codeconfig import CodeConfig
from reportgen.study.prompts import Prompt


#: A pass@k sample's prompt id is the prompt's id, this separator and the sample's number (ids never hold it).
SAMPLE_SEPARATOR = "#"


def base_prompt_id(prompt_id: str) -> str:
    """The prompt a pass@k sample answers (a prompt's own id is its own base)."""
    return prompt_id.split(SAMPLE_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class CodeJob:
    program: str
    how: str  # how the code was taken from the answer (reportgen.code.extract)
    limits: Limits
    program_hash: str
    limits_hash: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.program_hash, self.limits_hash)


def limits_for(config: CodeConfig, prompt: Prompt) -> Limits:
    """The study's limits, with the prompt's own timeout where it has one."""
    base = Limits(timeout_s=config.timeout, memory_bytes=config.memory_mb * MiB, processes=config.processes)
    return base.with_timeout(prompt.timeout)


def limits_hash(limits: Limits) -> str:
    return hashlib.sha256(json.dumps(limits.key(), sort_keys=True).encode()).hexdigest()[:16]


def job_for(answer: str, prompt: Prompt, config: CodeConfig) -> CodeJob:
    """The job for one answer (``prompt`` must be a code prompt)."""
    assert prompt.tests is not None and prompt.entry_point is not None
    context = prompt.code_context if prompt.code_context is not None else prompt.prompt
    extracted = extract_code(answer, prompt.entry_point, context)
    text = program(extracted.code, prompt.tests, prompt.entry_point)
    limits = limits_for(config, prompt)
    return CodeJob(text, extracted.how, limits, program_hash(text), limits_hash(limits))
