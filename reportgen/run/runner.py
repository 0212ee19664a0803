"""run_study(): every model × the prompt set → the results store, batch by batch, resumable.

plan (what is pending and why) → execute (an Executor: local by default) → sink (the store, written by
this process alone). Work already in the store (same weights' fingerprint, same prompt content and
generation settings) is never redone; a model whose every result is stored is not even loaded.
"""

from __future__ import annotations

import contextlib
import platform
import sys
import time
import uuid
from importlib import metadata
from pathlib import Path

from reportgen.errors import ConfigError
from reportgen.records import RunManifest
from reportgen.run.coderun import execute_code as run_code, require_opt_in
from reportgen.run.execute import Executor, LocalExecutor, Progress
from reportgen.run.plan import plan_models, select_models
from reportgen.run.sink import StoreSink
from reportgen.run.summary import RunSummary
from reportgen.store import Store, store_path
from reportgen.study.config import Study, config_hash
from reportgen.study.prompts import PromptSet, study_prompt_set

__all__ = ["executor_for", "run_manifest", "run_study"]

_PACKAGES = ("reportgen", "torch", "transformers", "peft", "gguf", "llama_cpp_python", "httpx", "pandas", "ray")


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_manifest(study: Study, prompt_set: PromptSet) -> dict:
    try:
        from reportgen.util.hardware import hardware_summary

        hardware = hardware_summary(measure_bandwidth=True)
    except Exception as exc:  # hardware facts are informative, never fatal
        hardware = {"error": str(exc)}
    return {
        "schema_version": RunManifest.SCHEMA_VERSION,
        "config": str(study.path),
        "config_hash": config_hash(study),
        "prompt_set": prompt_set.name,
        "prompt_set_hash": prompt_set.content_hash(),
        "prompts": len(prompt_set.prompts),
        "generation": study.generation.model_dump(mode="json"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _package_versions(),
        "hardware": hardware,
        "seed": study.generation.seed,
    }


def executor_for(study: Study) -> Executor:
    """The executor the study's ``execution.engine`` asks for (Ray is imported only when it runs)."""
    if study.execution.engine == "ray":
        from reportgen.run.ray_executor import RayExecutor

        return RayExecutor(study.execution)
    return LocalExecutor()


def check_model_files(study: Study, model_ids: list[str]) -> None:
    """The checks ``validate`` makes on the models' config.json, adapter_config.json and GGUF headers,
    before any model loads: a broken file is a ConfigError (exit 2) naming the file and the key, not a
    failed model run (exit 1) after the others ran."""
    from reportgen.specs.study import model_file_problems

    problems = model_file_problems(study, model_ids)
    if problems:
        raise ConfigError(problems)


def run_study(
    study: Study,
    *,
    model_ids: list[str] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    executor: Executor | None = None,
    store: Store | None = None,
    judge: bool = True,
    templates_dir: str | Path | None = None,
    execute_code: bool = False,
) -> RunSummary:
    """Run every (selected, runnable) model over the study's prompt set into the results store, then
    (``judge``, when the study has judges) let each judge grade the current answers.

    ``store``: an open store to use (the build passes its own, so one build opens the store once).
    ``templates_dir``: a folder whose judge templates override the defaults.
    ``execute_code``: run the answers to code prompts even when the study's ``code.execute`` is false (the
    ``--execute-code`` flag); a prompt set with code prompts is refused when neither allows it.
    """
    prompt_set = study_prompt_set(study)
    require_opt_in(study, prompt_set, execute_code)
    models = select_models(study, model_ids)
    check_model_files(study, [m.id for m in models])
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    with contextlib.ExitStack() as stack:
        if store is None:
            store = stack.enter_context(Store(store_path(study)))
        work = plan_models(store, study, prompt_set, models, force=force)
        sink = StoreSink(store, run_id, lambda: run_manifest(study, prompt_set))
        status = "failed"
        try:
            summaries = (executor or executor_for(study)).execute(work, sink, progress)
            status = "partial" if any(s.error for s in summaries) else "complete"
        finally:
            sink.run_finished(status)
        code = None
        if prompt_set.code_prompts:
            code = run_code(store, study, prompt_set, work, run_id)
        judged = []
        if judge and study.judges:
            from reportgen.run.judging import judge_study

            judged = judge_study(
                study,
                store=store,
                work=None if model_ids else work,
                templates_dir=templates_dir,
                progress=progress,
                run_id=run_id,
            )
    return RunSummary(run_id if sink.started else None, summaries, judged, code)
