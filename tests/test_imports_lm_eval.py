"""Real lm-evaluation-harness runs imported as models of a study.

lm-eval (a dev dependency) evaluates two tiny random GPT-2 models with its own CLI on two local tasks defined by
task YAMLs over local JSONL (a multiple-choice task and a generation task), with ``--log_samples``; the second
model with ``--limit``, so it lacks samples the first has. The study imports both folders and must keep every
sample, agree with lm-eval's own results file, and test the pair exactly as statsmodels does on the same values.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reportgen.imports import UnreadableLog, read_log
from reportgen.imports.importer import import_study_logs
from reportgen.stats.imported import coverage
from reportgen.stats.tables import compute_tables
from reportgen.store import Store, store_path
from reportgen.study.config import load_config

pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency (pip install -e '.[dev]')")

ROOT = Path(__file__).resolve().parents[1]
MC_DOCS = 12
GEN_DOCS = 4
LIMIT = 9  # the second model is evaluated on the first LIMIT documents of each task only

QUESTIONS = [
    ("The capital of France is", ["Paris", "Rome", "Berlin"], 0),
    ("Two plus two is", ["three", "four", "five"], 1),
    ("The quick brown fox jumps over the", ["lazy dog", "cat", "moon"], 0),
    ("Six times seven is", ["ten", "six", "forty-two"], 2),
    ("Hello, how are", ["you", "them", "trees"], 0),
    ("SELECT name FROM users WHERE age", ["> 30", "is blue", "sings"], 0),
    ("Write a short poem about the", ["sea", "SELECT", "42"], 0),
    ("A small model runs quickly on a", ["laptop", "poem", "fox"], 0),
    ("Language models predict the next", ["token", "France", "dog"], 0),
    ("What is the capital of", ["France", "seven", "users"], 0),
    ("def add(a, b): return", ["a + b", "the sky", "Paris"], 0),
    ("I am fine, thank", ["you", "sea", "table"], 0),
]


def _write_tasks(folder: Path) -> None:
    mc = [{"question": q, "choices": c, "label": label, "n": i} for i, (q, c, label) in enumerate(QUESTIONS[:MC_DOCS])]
    (folder / "mc.jsonl").write_text("".join(json.dumps(d) + "\n" for d in mc))
    gen = [{"question": q, "answer": c[label]} for q, c, label in QUESTIONS[:GEN_DOCS]]
    (folder / "gen.jsonl").write_text("".join(json.dumps(d) + "\n" for d in gen))
    (folder / "tiny_mc.yaml").write_text(f"""task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder / "mc.jsonl"}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
""")
    (folder / "tiny_gen.yaml").write_text(f"""task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder / "gen.jsonl"}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
""")


def run_lm_eval(runs: list[tuple[Path, Path, int | None]], tasks: Path) -> None:
    """lm-eval's own command line (``lm_eval.__main__.cli_evaluate``), once per (model, output, limit), in one
    process so lm-eval and torch are imported once."""
    argvs = [
        ["lm_eval", "--model", "hf", "--model_args", f"pretrained={model}", "--tasks", "tiny_mc,tiny_gen"]
        + ["--include_path", str(tasks), "--output_path", str(out), "--log_samples", "--device", "cpu"]
        + (["--limit", str(limit)] if limit else [])
        for model, out, limit in runs
    ]
    script = (
        "import sys\nfrom lm_eval.__main__ import cli_evaluate\nfor argv in ARGVS:\n    sys.argv = argv\n    cli_evaluate()\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, "-c", script.replace("ARGVS", repr(argvs))], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    from tiny_models import make_tiny_gpt2, make_tiny_llama

    folder = tmp_path_factory.mktemp("lm-eval")
    (folder / "tasks").mkdir()
    _write_tasks(folder / "tasks")
    make_tiny_gpt2(folder / "model-a", seed=0)
    make_tiny_llama(folder / "model-b", seed=1)  # another architecture and tokenizer: other answers
    run_lm_eval([(folder / "model-a", folder / "out-a", None), (folder / "model-b", folder / "out-b", LIMIT)], folder / "tasks")
    return folder


def _study(folder: Path, a: Path, b: Path) -> Path:
    config = folder / "configs" / "study.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(f"""title: Imported from lm-eval
models:
  - id: model-a
    name: Model A
    results_from: {{tool: lm-eval, path: {a}}}
  - id: model-b
    name: Model B
    results_from: {{tool: lm-eval, path: {b}}}
output: {{dir: {folder / "report"}, formats: [markdown, html]}}
""")
    return config


def _own_files(out: Path) -> tuple[dict, dict[str, list[dict]]]:
    """lm-eval's results file and per-task sample records, as lm-eval wrote them."""
    (results,) = out.rglob("results_*.json")
    samples = {
        task: [json.loads(line) for line in next(out.rglob(f"samples_{task}_*.jsonl")).read_text().splitlines()]
        for task in ("tiny_mc", "tiny_gen")
    }
    return json.loads(results.read_text()), samples


@pytest.fixture(scope="module")
def imported(evaluated):
    study = load_config(_study(evaluated, evaluated / "out-a", evaluated / "out-b"))
    with Store(store_path(study)) as store:
        outcomes = import_study_logs(study, store)
        tables = compute_tables(store, study, None)
    return study, outcomes, tables


def test_every_sample_is_imported(evaluated, imported):
    _, outcomes, tables = imported
    assert [o.stored for o in outcomes] == [True, True]
    for model_id, out, n_mc, n_gen in (("model-a", "out-a", MC_DOCS, GEN_DOCS), ("model-b", "out-b", LIMIT, GEN_DOCS)):
        _, samples = _own_files(evaluated / out)
        assert [len(samples["tiny_mc"]), len(samples["tiny_gen"])] == [n_mc, n_gen]
        rows = tables.per_prompt[tables.per_prompt["model_id"] == model_id]
        expected = {f"{task}/{r['doc_hash'][:16]}" for task, records in samples.items() for r in records}
        assert set(rows["prompt_id"]) == expected
        assert len(rows) == n_mc + n_gen
    assert coverage(tables.per_prompt).to_dict("records") == [
        {"task": "tiny_gen", "model_id": "model-a", "samples": GEN_DOCS, "common": GEN_DOCS, "missing": 0},
        {"task": "tiny_gen", "model_id": "model-b", "samples": GEN_DOCS, "common": GEN_DOCS, "missing": 0},
        {"task": "tiny_mc", "model_id": "model-a", "samples": MC_DOCS, "common": LIMIT, "missing": 0},
        {"task": "tiny_mc", "model_id": "model-b", "samples": LIMIT, "common": LIMIT, "missing": MC_DOCS - LIMIT},
    ]


def test_aggregates_equal_lm_evals_results_file(evaluated, imported):
    _, _, tables = imported
    assert set(tables.metrics) == {"tiny_mc/acc", "tiny_mc/acc_norm", "tiny_gen/exact_match"}
    for model_id, out in (("model-a", "out-a"), ("model-b", "out-b")):
        results, _ = _own_files(evaluated / out)
        for column, task, key in (
            ("tiny_mc/acc", "tiny_mc", "acc,none"),
            ("tiny_mc/acc_norm", "tiny_mc", "acc_norm,none"),
            ("tiny_gen/exact_match", "tiny_gen", "exact_match,none"),
        ):
            row = tables.summary[(tables.summary["model_id"] == model_id) & (tables.summary["metric"] == column)].iloc[0]
            assert row["mean"] == results["results"][task][key], (model_id, column)
            assert row["n"] == results["n-samples"][task]["effective"]
            per_task = tables.category_summary
            cell = per_task[(per_task["model_id"] == model_id) & (per_task["metric"] == column) & (per_task["category"] == task)]
            assert cell["mean"].iloc[0] == results["results"][task][key]


def test_paired_test_is_statsmodels_mcnemar_on_the_common_samples(evaluated, imported):
    from statsmodels.stats.contingency_tables import mcnemar

    _, _, tables = imported
    _, own_a = _own_files(evaluated / "out-a")
    _, own_b = _own_files(evaluated / "out-b")
    discordant = []
    for metric in ("acc", "acc_norm"):
        a = {r["doc_hash"]: r[metric] for r in own_a["tiny_mc"]}
        b = {r["doc_hash"]: r[metric] for r in own_b["tiny_mc"]}
        common = sorted(set(a) & set(b))
        assert len(common) == LIMIT
        table = [
            [sum(a[h] == 1 and b[h] == 1 for h in common), sum(a[h] == 1 and b[h] == 0 for h in common)],
            [sum(a[h] == 0 and b[h] == 1 for h in common), sum(a[h] == 0 and b[h] == 0 for h in common)],
        ]
        discordant.append(table[0][1] + table[1][0])
        row = tables.pairwise[tables.pairwise["metric"] == f"tiny_mc/{metric}"].iloc[0]
        assert (row["model_a"], row["model_b"], row["n"]) == ("model-a", "model-b", LIMIT)
        assert row["diff"] == pytest.approx(sum(a[h] - b[h] for h in common) / LIMIT, abs=1e-12)
        if table[0][1] + table[1][0]:
            assert row["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-12)
        else:
            assert math.isnan(row["p_value"]) or row["p_value"] == 1.0
    assert max(discordant) > 0  # the two models disagree somewhere, so the test has something to test


def test_reimporting_an_unchanged_log_does_nothing(imported):
    study, _, _ = imported
    with Store(store_path(study)) as store:
        before = store.content_digest()
        again = import_study_logs(study, store)
        assert [o.stored for o in again] == [False, False]
        assert store.content_digest() == before
        assert len(store.imports_frame()) == 2


def test_a_log_of_an_unknown_lm_eval_version_is_refused(evaluated, tmp_path):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(evaluated / "out-a", copy)
    (results,) = copy.rglob("results_*.json")
    data = json.loads(results.read_text())
    data["lm_eval_version"] = "0.3.0"
    results.write_text(json.dumps(data))
    with pytest.raises(UnreadableLog, match=r"written by lm-eval 0\.3\.0; reportgen reads the results of lm-eval 0\.4\.x"):
        read_log("lm-eval", copy)
    study = load_config(_study(tmp_path, copy, evaluated / "out-b"))
    from reportgen.errors import ConfigError
    from reportgen.imports.importer import read_study_logs

    with pytest.raises(ConfigError) as error:
        read_study_logs(study)
    assert str(error.value).startswith(f"{study.path}:5: models[0].results_from.path: {copy}")


def test_a_model_names_either_a_source_or_a_log(tmp_path):
    from reportgen.errors import ConfigError

    config = tmp_path / "study.yaml"
    config.write_text(
        "title: t\nmodels:\n  - id: a\n    name: A\n    source: {type: local, path: .}\n"
        "    results_from: {tool: lm-eval, path: .}\n"
    )
    with pytest.raises(ConfigError, match=r"study\.yaml:3: models\[0\]: .*either 'source' .* or 'results_from'"):
        load_config(config)
    config.write_text("title: t\nmodels:\n  - id: a\n    name: A\n    results_from: {tool: helm, path: .}\n")
    with pytest.raises(ConfigError, match=r"study\.yaml:5: models\[0\]\.results_from\.tool: .*'lm-eval' or 'inspect'"):
        load_config(config)


def test_a_study_mixes_imported_models_and_models_run_here(evaluated, tmp_path):
    """One model run by reportgen on the study's prompts, one imported: the build runs the one, imports the other,
    and each table reports each model on what it has (no imported value is compared with a prompt-set score)."""
    (tmp_path / "prompts.yaml").write_text(
        "prompts:\n  - {id: p1, prompt: 'The capital of France is', reference: 'Paris'}\n"
        "  - {id: p2, prompt: 'Two plus two is', reference: 'four'}\n"
    )
    config = tmp_path / "study.yaml"
    config.write_text(f"""title: Mixed
prompts: prompts.yaml
generation: {{max_new_tokens: 3}}
output: {{dir: report, formats: [markdown]}}
models:
  - {{id: here, name: Run here, source: {{type: local, path: {evaluated / "model-a"}}}}}
  - {{id: there, name: Imported, results_from: {{tool: lm-eval, path: {evaluated / "out-b"}}}}}
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "reportgen", "build", str(config)], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert "there: lm-eval 0.4.13 log of" in done.stderr and "here: 2 prompts (2 run, 0 cached)" in done.stderr
    readme = (tmp_path / "report" / "README.md").read_text()
    assert f"| tiny_mc/acc ↑ | — | {_own_files(evaluated / 'out-b')[0]['results']['tiny_mc']['acc,none']:.2f} [" in readme
    assert "| Exact match ↑ | 0.00 [0.00, 0.66] | — | 0–2 |" in readme


def test_a_named_results_file_pins_its_run_and_a_folder_of_two_models_is_refused(evaluated, tmp_path):
    import shutil

    (results,) = (evaluated / "out-a").rglob("results_*.json")
    pinned = read_log("lm-eval", results)
    whole = read_log("lm-eval", evaluated / "out-a")
    assert pinned.digest == whole.digest and len(pinned.samples) == MC_DOCS + GEN_DOCS
    assert pinned.files == tuple(sorted(str(p) for p in results.parent.iterdir() if p.suffix in (".json", ".jsonl")))
    both = tmp_path / "both"
    shutil.copytree(evaluated / "out-a", both / "a")
    shutil.copytree(evaluated / "out-b", both / "b")
    with pytest.raises(
        UnreadableLog, match=r"holds the results of several models \(.*model-a, .*model-b\)\. Fix: point it at one"
    ):
        read_log("lm-eval", both)


def test_the_readme_example_of_imported_models_is_valid(tmp_path):
    """The config a user copies from the README's import workflow loads, its three models imported, none run."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## A study from runs made elsewhere", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "study.yaml").write_text(block)
    study = load_config(tmp_path / "configs" / "study.yaml")
    assert [(m.results_from.tool, m.runnable) for m in study.models] == [
        ("lm-eval", False),
        ("lm-eval", False),
        ("inspect", False),
    ]
    assert study.models[0].results_from.path == tmp_path / "evals" / "base"
