"""Real Inspect evaluations imported as models of a study.

inspect_ai (a dev dependency) evaluates a task over a local JSONL dataset with its mock model provider (fixed
answers, no network) for two models, two epochs each, the second on fewer samples; the study imports both logs
through inspect_ai's own ``read_eval_log`` and must keep every sample, agree with Inspect's own accuracy, and test
the pair exactly as statsmodels does on the same per-sample values. The real CLI then builds the report from them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reportgen.imports.importer import import_study_logs
from reportgen.stats.tables import compute_tables
from reportgen.store import Store, store_path
from reportgen.study.config import load_config

pytest.importorskip("inspect_ai", reason="inspect-ai is a dev dependency (pip install -e '.[dev]')")

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 2
HOSTILE = "<script>alert('x')</script> | **bold**"
SAMPLES = [
    ("q1", "Capital of France?", "Paris"),
    ("q2", "Two plus two?", "4"),
    ("q3", "Colour of the sky?", "blue"),
    ("q4", "Opposite of hot?", "cold"),
    ("q5", "First letter of the alphabet?", "A"),
    ("q6", "Six times seven?", "42"),
]
ANSWERS = {
    "model-a": ["Paris", "4", "green", "cold", "A", "41"],
    "model-b": ["Paris", "5", "blue", HOSTILE],  # evaluated with limit=4: q5 and q6 are missing
}
LIMITS = {"model-a": None, "model-b": 4}

SCRIPT = """
import json, sys
from inspect_ai import Task, eval as inspect_eval
from inspect_ai.dataset import json_dataset
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import includes, match
from inspect_ai.solver import generate

dataset, log_dir, runs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for name, answers, limit in runs:
    # usage given, so the mock provider does not count tokens (which would fetch a tokenizer)
    outputs = [
        ModelOutput(model=name, choices=ModelOutput.from_content(name, a).choices, usage=ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2))
        for _ in range({epochs}) for a in answers
    ]
    task = Task(dataset=json_dataset(dataset), solver=[generate()], scorer=[match(), includes()], name="tiny_qa")
    model = get_model("mockllm/" + name, custom_outputs=iter(outputs))
    (log,) = inspect_eval(task, model=model, log_dir=f"{{log_dir}}/{{name}}", epochs={epochs}, limit=limit, display="none", max_samples=1)
    assert log.status == "success", log.error
"""


def run_inspect(folder: Path, runs: list[tuple[str, list[str], int | None]]) -> None:
    env = {**os.environ, "INSPECT_LOG_LEVEL": "warning"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(epochs=EPOCHS), str(folder / "qa.jsonl"), str(folder / "logs"), json.dumps(runs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inspect")
    (folder / "qa.jsonl").write_text("".join(json.dumps({"id": i, "input": q, "target": t}) + "\n" for i, q, t in SAMPLES))
    run_inspect(folder, [(name, answers, LIMITS[name]) for name, answers in ANSWERS.items()])
    return folder


def _study(folder: Path, a: Path | None = None, b: Path | None = None) -> Path:
    config = folder / "configs" / "study.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(f"""title: Imported from Inspect
models:
  - id: model-a
    name: Model A
    results_from: {{tool: inspect, path: {a or folder / "logs" / "model-a"}}}
  - id: model-b
    name: Model B
    results_from: {{tool: inspect, path: {b or folder / "logs" / "model-b"}}}
output: {{dir: {folder / "report"}, formats: [markdown, html]}}
""")
    return config


def _own_log(folder: Path, name: str):
    from inspect_ai.log import list_eval_logs, read_eval_log

    (info,) = list_eval_logs(str(folder / "logs" / name))
    return read_eval_log(info)


@pytest.fixture(scope="module")
def imported(evaluated):
    study = load_config(_study(evaluated))
    with Store(store_path(study)) as store:
        import_study_logs(study, store)
        tables = compute_tables(store, study, None)
    return study, tables


def test_every_sample_and_epoch_is_imported(evaluated, imported):
    _, tables = imported
    for name in ANSWERS:
        log = _own_log(evaluated, name)
        rows = tables.per_prompt[tables.per_prompt["model_id"] == name]
        assert sorted(rows["prompt_id"]) == sorted(f"tiny_qa/{s.id}#{s.epoch}" for s in log.samples)
        assert len(rows) == EPOCHS * len(ANSWERS[name])
        assert list(rows[rows["prompt_id"] == "tiny_qa/q2#1"]["output"]) == [ANSWERS[name][1]]
    assert tables.coverage.to_dict("records") == [
        {"task": "tiny_qa", "model_id": "model-a", "samples": 12, "common": 8, "missing": 0},
        {"task": "tiny_qa", "model_id": "model-b", "samples": 8, "common": 8, "missing": 4},
    ]


def test_means_equal_inspects_own_accuracy(evaluated, imported):
    _, tables = imported
    assert tables.metrics == ["tiny_qa/includes", "tiny_qa/match"]
    for name in ANSWERS:
        log = _own_log(evaluated, name)
        for score in log.results.scores:
            row = tables.summary[(tables.summary["model_id"] == name) & (tables.summary["metric"] == f"tiny_qa/{score.name}")]
            assert row["mean"].iloc[0] == pytest.approx(score.metrics["accuracy"].value, abs=1e-12), (name, score.name)


def test_paired_test_is_statsmodels_mcnemar(evaluated, imported):
    from inspect_ai.scorer import value_to_float
    from statsmodels.stats.contingency_tables import mcnemar

    _, tables = imported
    to_float = value_to_float()
    per = {
        name: {(s.id, s.epoch): to_float(s.scores["includes"].value) for s in _own_log(evaluated, name).samples}
        for name in ANSWERS
    }
    common = sorted(set(per["model-a"]) & set(per["model-b"]))
    a, b = [per["model-a"][k] for k in common], [per["model-b"][k] for k in common]
    table = [
        [sum(x == 1 and y == 1 for x, y in zip(a, b)), sum(x == 1 and y == 0 for x, y in zip(a, b))],
        [sum(x == 0 and y == 1 for x, y in zip(a, b)), sum(x == 0 and y == 0 for x, y in zip(a, b))],
    ]
    assert table[0][1] + table[1][0] > 0  # the answers differ, so there is something to test
    row = tables.pairwise[tables.pairwise["metric"] == "tiny_qa/includes"].iloc[0]
    assert row["n"] == len(common) == 8
    assert row["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-12)


def reportgen(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT
    )


def test_build_cites_the_logs_escapes_their_text_and_rebuilds_when_a_log_changes(evaluated, tmp_path):
    import shutil

    folder = tmp_path / "study"
    shutil.copytree(evaluated, folder, ignore=shutil.ignore_patterns("configs", "report"))
    config = _study(folder)
    first = reportgen("build", str(config))
    assert first.returncode == 0, first.stderr
    assert "model-a: inspect 0.3.285 log of 'mockllm/model-a' imported: 12 samples, 2 metrics" in first.stderr
    readme = (folder / "report" / "README.md").read_text()
    html = (folder / "report" / "report.html").read_text()
    log_a = next((folder / "logs" / "model-a").glob("*.eval"))
    assert "Where the imported results come from" in readme
    # nothing ran here: the glance table has no speed, memory or failure columns, and says why
    glance = readme.split("\n## Results at a glance\n", 1)[1].split("\n## ", 1)[0]
    assert "| Model | tiny_qa/includes ↑<br>[95% CI] |\n" in glance and "throughput" not in glance
    assert "Every result is imported from another tool's log: nothing was run or timed here." in glance
    # a study of imported results only leads with the first imported metric: the verdict is about it
    conclusion = readme.split("\n## Conclusion\n", 1)[1].split("\n## ", 1)[0]
    assert "**Best tiny_qa/includes" in conclusion, conclusion
    assert "| 1. Model A | inspect 0.3.285 | mockllm/model-a |" in readme
    assert "| tiny_qa: epochs=2, model=mockllm/model-a |" in readme  # the settings Inspect logged
    assert f"`{log_a}`" in readme
    # the log's text is inert: escaped as text in the Markdown, as JSON data in the HTML's prompt explorer
    assert HOSTILE not in html and "<script>alert(" not in html and "<script>alert(" not in readme
    assert "&lt;script&gt;alert('x')&lt;/script&gt; \\| \\*\\*bold\\*\\*" in readme
    assert "\\u003cscript\\u003ealert('x')\\u003c/script\\u003e | **bold**" in html

    again = reportgen("build", str(config))
    assert again.returncode == 0, again.stderr
    assert "unchanged, already imported" in again.stderr and "nothing rendered" in again.stderr
    # a render in a fresh process reads the cached tables: the imported metrics must be known before they are read
    rendered = reportgen("render", str(config))
    assert rendered.returncode == 0, rendered.stderr
    assert (folder / "report" / "README.md").read_text() == readme

    # model A retrained and evaluated again: a new log in its folder; the latest per task is imported
    run_inspect(folder, [("model-a", ["Paris", "4", "blue", "cold", "A", "42"], None)])
    third = reportgen("build", str(config))
    assert third.returncode == 0, third.stderr
    assert "model-a: inspect 0.3.285 log of 'mockllm/model-a' imported" in third.stderr
    assert "rendered" in third.stderr and "nothing rendered" not in third.stderr
    with Store(folder / "report" / "results.sqlite") as store:
        assert list(store.imports_frame()["model_id"]) == ["model-a", "model-a", "model-b"]
    # the new log is a new version of model A in the retraining section: the change, paired on the same samples
    readme = (folder / "report" / "README.md").read_text()
    assert "Model A: what changed" in readme
    assert "| tiny_qa/includes ↑ | 0.67 | 1.00 | +0.33 |" in readme.replace("Tiny_qa", "tiny_qa")
    row = next(
        line for line in readme.splitlines() if line.replace("Tiny_qa", "tiny_qa").startswith("| tiny_qa/includes ↑ | 0.67 |")
    )
    assert row.split("|")[6].strip() == "12"  # n: the samples both logs have


def test_a_log_of_an_unknown_format_version_is_refused(evaluated, tmp_path):
    """A log from a newer Inspect (format version 3, which inspect_ai 0.3.285 does not read) is refused at the
    config line, naming the version found and the one read."""
    from inspect_ai.log import write_eval_log

    from reportgen.errors import ConfigError
    from reportgen.imports.importer import read_study_logs

    newer = tmp_path / "logs" / "model-a" / "newer.json"
    newer.parent.mkdir(parents=True)
    write_eval_log(_own_log(evaluated, "model-a"), str(newer))
    data = json.loads(newer.read_text())
    data["version"] = 3
    newer.write_text(json.dumps(data))
    (tmp_path / "logs" / "model-b").mkdir()
    study = load_config(_study(tmp_path, a=newer))
    with pytest.raises(ConfigError) as error:
        read_study_logs(study)
    message = error.value.problems[0]
    assert message.startswith(f"{study.path}:5: models[0].results_from.path: {newer}: inspect_ai 0.3.285 cannot read it (")
    assert "version 3" in message and "reportgen reads Inspect log format version 2" in message
    assert error.value.problems[1].startswith(
        f"{study.path}:8: models[1].results_from.path: {tmp_path / 'logs' / 'model-b'} holds no Inspect log"
    )


def test_a_folder_of_two_models_logs_is_refused(evaluated, tmp_path):
    import shutil

    from reportgen.imports import UnreadableLog, read_log

    shutil.copytree(evaluated / "logs", tmp_path / "logs")
    with pytest.raises(UnreadableLog, match=r"holds logs of several models \(mockllm/model-a, mockllm/model-b\)"):
        read_log("inspect", tmp_path / "logs")


def test_run_imports_the_logs_and_render_reports_them(evaluated, tmp_path):
    """`reportgen run` on a study whose models are all imported stores their logs (nothing to run), and
    `reportgen render` writes the report from the store, as for models run here."""
    import shutil

    folder = tmp_path / "study"
    shutil.copytree(evaluated / "logs", folder / "logs")
    config = _study(folder)
    ran = reportgen("run", str(config))
    assert ran.returncode == 0, ran.stderr
    assert "model-b: inspect 0.3.285 log of 'mockllm/model-b' imported: 8 samples, 2 metrics" in ran.stderr
    rendered = reportgen("render", str(config))
    assert rendered.returncode == 0, rendered.stderr
    assert "| tiny_qa/includes ↑ | **0.67 [0.39, 0.86]** |" in (folder / "report" / "README.md").read_text()
