"""Multiple choice by log-likelihood agrees with lm-evaluation-harness itself: lm-eval 0.4 runs a tiny local
multiple-choice task (local JSON read through a task YAML) on a tiny random model, and reportgen's per-choice
log-likelihoods equal lm-eval's within 1e-4, its acc and acc_norm per item identical."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency (pip install -e '.[dev]')")

from reportgen.backends.transformers import choices as choices_module
from reportgen.backends.transformers.backend import TransformersBackend
from reportgen.run.plan import choice_requests
from reportgen.stats.choice import choice_frame, item_scores
from reportgen.study.config import ModelConfig
from reportgen.study.prompts import ChoiceItem, PromptSet, Prompt
from tiny_models import CORPUS

# Contexts with and without trailing space, an empty context, choices of one and of several tokens, a text
# answer, another delimiter: the cases lm-eval's tokenization distinguishes; a context longer than the model
# reads ("story"), and one long enough that its key/values are computed once for its choices ("shared").
ITEMS = [
    {
        "id": "capital",
        "context": "What is the capital of France? Answer:",
        "choices": ["Paris", "London", "the sea"],
        "answer": 0,
    },
    {"id": "sum", "context": "Two plus two is", "choices": ["four", "five", "forty-two"], "answer": "four"},
    {"id": "fox", "context": "The quick brown fox jumps over the ", "choices": ["lazy dog.", "moon", "fence"], "answer": 0},
    {"id": "empty", "context": "", "choices": ["Hello, how are you?", "SELECT name FROM users;"], "answer": 1},
    {
        "id": "newline",
        "context": "def add(a, b):",
        "choices": ["return a + b", "pass"],
        "answer": 0,
        "target_delimiter": "\n    ",
    },
    {
        "id": "long",
        "context": "Language models predict the next token from the previous tokens. " * 3 + "A small model",
        "choices": ["runs quickly on a laptop", "is", "sings"],
        "answer": 0,
    },
    {
        "id": "story",  # longer than the models' 512 positions: cut from the left, for each choice by its length
        "context": " ".join(CORPUS) * 2 + " So the fox",
        "choices": ["jumps over the lazy dog.", "is Paris", "runs quickly", "sleeps"],
        "answer": 0,
    },
    {
        "id": "shared",  # ~140 tokens, 4 choices: its key/values are computed once and shared by the choices
        "context": " ".join(CORPUS[:5]) + " Then the fox",
        "choices": ["jumps over the lazy dog.", "is Paris", "runs quickly", "sleeps"],
        "answer": 2,
    },
]


def lm_eval_samples(model_dir: Path, folder: Path) -> list[dict]:
    """lm-eval's own per-sample log of a task over ITEMS (a JSON file read by a task YAML), offline."""
    import os

    os.environ["HF_DATASETS_OFFLINE"] = "1"
    import lm_eval
    from lm_eval.tasks import TaskManager

    data = folder / "items.jsonl"
    data.write_text(
        "".join(json.dumps({**{"target_delimiter": " "}, **item, "gold": ChoiceItem(**item).gold}) + "\n" for item in ITEMS)
    )
    # one task per delimiter (lm-eval's target_delimiter is a task setting)
    tasks = []
    for name, delimiter in (("rg_mc_space", " "), ("rg_mc_newline", "\n    ")):
        (folder / f"{name}.yaml").write_text(
            textwrap.dedent(
                f"""\
                task: {name}
                dataset_path: json
                dataset_kwargs:
                  data_files: {{test: {json.dumps(str(data))}}}
                test_split: test
                process_docs: !function utils.only_{name}
                output_type: multiple_choice
                doc_to_text: "{{{{context}}}}"
                doc_to_choice: "{{{{choices}}}}"
                doc_to_target: gold
                target_delimiter: {json.dumps(delimiter)}
                metric_list:
                  - metric: acc
                  - metric: acc_norm
                """
            )
        )
        tasks.append(name)
    (folder / "utils.py").write_text(
        "def only_rg_mc_space(docs):\n    return docs.filter(lambda d: d['target_delimiter'] == ' ')\n"
        "def only_rg_mc_newline(docs):\n    return docs.filter(lambda d: d['target_delimiter'] != ' ')\n"
    )
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype=float32,device=cpu",
        tasks=tasks,
        task_manager=TaskManager(include_path=str(folder)),
        batch_size=2,
        log_samples=True,
        num_fewshot=0,
    )
    return [sample for task in tasks for sample in out["samples"][task]]


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def model_dir(request) -> Path:
    """A Llama tokenizer adds BOS to every encoding, GPT-2's adds nothing: lm-eval's split differs."""
    return request.getfixturevalue(f"tiny_{request.param}_dir")


@pytest.fixture(scope="module")
def theirs(model_dir, tmp_path_factory):
    return lm_eval_samples(model_dir, tmp_path_factory.mktemp("lm-eval-task"))


@pytest.fixture(scope="module")
def loaded_backend(model_dir, tmp_path_factory):
    import os

    os.environ["REPORTGEN_CACHE"] = str(tmp_path_factory.mktemp("reportgen-cache"))
    backend = TransformersBackend(ModelConfig(id="m", name="m", source={"type": "local", "path": str(model_dir)}))
    backend.load()
    yield backend
    backend.close()


PROMPT_SET = PromptSet(prompts=(Prompt(id="p", prompt="x"),), multiple_choice=tuple(ChoiceItem(**item) for item in ITEMS))


@pytest.fixture(scope="module")
def ours(loaded_backend):
    return PROMPT_SET, loaded_backend.continuations(choice_requests(PROMPT_SET))


def test_both_layouts_ran(loaded_backend):
    """The items exercise both ways of scoring: "shared" shares its context's key/values, the others run as
    left-padded whole sequences (the tiny models take logits_to_keep and position_ids)."""
    loaded = loaded_backend._require_loaded()
    assert choices_module._left_padding(loaded)

    def recomputed(item: dict) -> int:
        return len(loaded.tokenizer(item["context"])["input_ids"]) * (len(item["choices"]) - 1)

    shared = [item["id"] for item in ITEMS if recomputed(item) >= choices_module.SHARE_MIN_TOKENS]
    assert shared == ["story", "shared"]  # "story" does not fit the model: cut per choice, not shared
    assert len(loaded.tokenizer(ITEMS[-2]["context"])["input_ids"]) > loaded.context_limit()


def test_right_padded_layout_gives_the_same_numbers(loaded_backend, ours, monkeypatch):
    """A model without logits_to_keep or position_ids gets lm-eval's right-padded layout: the same numbers."""
    _, left = ours
    monkeypatch.setattr(choices_module, "_left_padding", lambda loaded: False)
    monkeypatch.setattr(choices_module, "SHARE_MIN_TOKENS", 10**9)  # every item as whole sequences
    right = loaded_backend.continuations(choice_requests(PROMPT_SET))
    assert [r.logprob for r in right] == pytest.approx([r.logprob for r in left], abs=1e-4)
    assert [(r.n_tokens, r.is_greedy) for r in right] == [(r.n_tokens, r.is_greedy) for r in left]


def test_loglikelihoods_equal_lm_evals(theirs, ours):
    prompt_set, results = ours
    by_item = {item["id"]: item for item in ITEMS}
    assert sorted(s["doc"]["id"] for s in theirs) == sorted(by_item)
    largest = 0.0
    for sample in theirs:
        item_id = sample["doc"]["id"]
        mine = [r for r in results if r.item_id == item_id]
        their_logliks = [float(resp[0][0]) for resp in sample["resps"]]
        their_greedy = [bool(resp[0][1]) for resp in sample["resps"]]
        assert len(mine) == len(their_logliks) == len(by_item[item_id]["choices"])
        for r, loglik, greedy in zip(mine, their_logliks, their_greedy):
            largest = max(largest, abs(r.logprob - loglik))
            assert r.logprob == pytest.approx(loglik, abs=1e-4), (item_id, r.choice)
            assert r.is_greedy == greedy
    print(f"largest log-likelihood difference from lm-eval: {largest:.3g} nats")


def test_acc_and_acc_norm_equal_lm_evals(theirs, ours):
    import pandas as pd

    prompt_set, results = ours
    rows = pd.DataFrame([{"model_id": "m", "item_id": r.item_id, "choice": r.choice, "logprob": r.logprob} for r in results])
    frame = choice_frame(rows, prompt_set)
    assert len(frame) == len(theirs)
    for sample in theirs:
        row = frame[frame["prompt_id"] == sample["doc"]["id"]].iloc[0]
        assert (row["mc_acc"], row["mc_acc_norm"]) == (sample["acc"], sample["acc_norm"]), sample["doc"]["id"]
    # the items tell acc from acc_norm somewhere (else the second comparison would check nothing new)
    assert (frame["mc_acc"] != frame["mc_acc_norm"]).any() or (frame["chosen"] != frame["chosen_norm"]).any()


def test_acc_norm_is_per_character_of_the_choice():
    """lm-eval's acc_norm divides each choice's log-likelihood by the characters of the choice (not of the
    delimiter, not bytes, not tokens): -1 over 1 character loses to -2 over 4."""
    assert item_scores([-1.0, -2.0], [1, 4], 1) == (0.0, 1.0)
    assert item_scores([-1.0, -1.0], [3, 3], 0) == (1.0, 1.0)  # a tie goes to the first, as numpy's argmax
