"""The analysis: computed statements, claim checks (never eval), consistency warnings, the spec table."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from reportgen import analysis  # noqa: E402
from reportgen.report.markdown import markdown_style  # noqa: E402
from reportgen.study.claims import parse_check  # noqa: E402
from reportgen.study.config import load_config  # noqa: E402
from reportgen.errors import ClaimError, ConfigError  # noqa: E402
from reportgen.specs.study import spec_for_model, spec_table, study_specs, table_value  # noqa: E402

MD = markdown_style()  # statements as the report writes them (Markdown-escaped)
ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = ROOT / "configs" / "assignment.yaml"
FALSE_CLAIMS = ROOT / "tests" / "golden" / "seed_false_claims.yaml"


@pytest.fixture(scope="module")
def study():
    return load_config(ASSIGNMENT)


@pytest.fixture(scope="module")
def specs(study):
    return study_specs(study)


@pytest.fixture(scope="module")
def table(specs):
    return spec_table(specs)


def write_study(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def tiny_config(tmp_path: Path, name: str, **overrides) -> Path:
    """A small real config.json (GPT-2 shaped unless overridden), so specs are computed quickly."""
    cfg = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_embd": 64,
        "n_head": 4,
        "n_layer": 2,
        "n_positions": 256,
        "vocab_size": 500,
        "torch_dtype": "float32",
        "bos_token_id": 0,
        "eos_token_id": 0,
    }
    cfg.update(overrides)
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder / "config.json"


# ------------------------------------------------------------------------------------------------
# the spec table


def test_spec_table_columns_and_exact_counts(table, specs):
    assert list(table.index) == ["llama-2-chat", "securix-llama-2-qlora", "securix-gpt2"]
    for name in (
        "context_length",
        "vocab_size",
        "parameters",
        "weight_bytes",
        "adapter_trainable_parameters",
        "adapter_share_of_base",
    ):
        assert name in table.columns
    assert str(table["parameters"].dtype) == "Int64"
    assert table_value(table, "llama-2-chat", "parameters") == 6_738_415_616
    assert isinstance(table_value(table, "llama-2-chat", "parameters"), int)
    assert table_value(table, "securix-llama-2-qlora", "adapter_trainable_parameters") == 33_554_432
    assert table_value(table, "llama-2-chat", "adapter_trainable_parameters") is None
    assert table_value(table, "securix-gpt2", "context_length") == 1024
    assert specs["securix-llama-2-qlora"].adapter.r == 64


def test_spec_for_model_sources(tmp_path):
    cfg = tiny_config(tmp_path, "local-model")
    path = write_study(
        tmp_path,
        f"""
title: t
models:
  - id: a
    name: A
    source: {{type: local, path: {cfg.parent}}}
  - id: b
    name: B
    source: {{type: http, url: http://127.0.0.1:9/x}}
""",
    )
    study = load_config(path)
    spec = spec_for_model(study.models[0])
    assert spec is not None and spec.context_length == 256 and spec.parameters
    assert spec_for_model(study.models[1]) is None  # an endpoint without a vendored config
    assert list(study_specs(study)) == ["a"]
    statements = analysis.spec_statements(study, study_specs(study), style=MD)
    assert any("No spec is available for B" in s.text for s in statements)


def test_missing_vendored_config_names_the_line(tmp_path):
    path = write_study(
        tmp_path,
        """
title: t
models:
  - id: a
    name: A
    config: nowhere/config.json
""",
    )
    study = load_config(path)
    with pytest.raises(ConfigError) as err:
        study_specs(study)
    message = err.value.format_message()
    assert f"{path}:6" in message and "models[0]" in message and "config.json not found" in message


def test_double_quant_changes_the_4bit_estimate(tmp_path):
    cfg = tiny_config(tmp_path, "m")
    path = write_study(
        tmp_path,
        f"""
title: t
models:
  - id: a
    name: A
    config: {cfg}
  - id: b
    name: B
    config: {cfg}
    quantization: {{load_in_4bit: true, bnb_4bit_use_double_quant: true}}
""",
    )
    specs = study_specs(load_config(path))
    assert specs["b"].weight_bytes_4bit < specs["a"].weight_bytes_4bit


# ------------------------------------------------------------------------------------------------
# computed statements


def by_topic(statements, topic):
    found = [s for s in statements if s.topic == topic]
    assert found, f"no statement about {topic}"
    return found


def test_statements_for_the_assignment(study, specs):
    statements = analysis.spec_statements(study, specs, style=MD)
    context = by_topic(statements, "context")[0]
    assert context.numbers["context_length"] == {"llama-2-chat": 4096, "securix-llama-2-qlora": 2048, "securix-gpt2": 1024}
    assert context.numbers["factor_over"] == {"securix-llama-2-qlora": 2.0, "securix-gpt2": 4.0}
    assert context.text.startswith("Llama 2 7B chat finetune App has the longest context, 4,096 tokens")
    assert "4× that of Securix Fine Tune GPT Neo (1,024)" in context.text

    vocab = by_topic(statements, "vocabulary")[0]
    assert vocab.text.startswith("Securix Fine Tune GPT Neo has the largest vocabulary, 50,257 tokens")
    assert "18,257 more tokens" in vocab.text and "(32,000 each)" in vocab.text

    params = by_topic(statements, "parameters")[0]
    assert "share the most parameters, 6,738,415,616" in params.text and "124,439,808" in params.text

    memory = by_topic(statements, "memory")[0]
    assert memory.numbers["weight_bytes"]["securix-gpt2"] == 4 * 124_439_808
    assert "12.55 GiB (float16)" in memory.text and "474.7 MiB (float32)" in memory.text

    shape = by_topic(statements, "architecture")[0]
    assert "have the same architecture and size" in shape.text
    assert "context length (4,096 vs 2,048)" in shape.text and "stored dtype (float16 vs bfloat16)" in shape.text

    adapter = by_topic(statements, "adapter")[0]
    assert adapter.numbers["trainable_parameters"] == 33_554_432
    assert "33,554,432 parameters" in adapter.text and "0.50% of the 6,738,415,616" in adapter.text
    assert "alpha / r = 0.25" in adapter.text

    quant = by_topic(statements, "quantization")[0]
    assert "4-bit (NF4, compute dtype float16, without double quantization)" in quant.text
    assert "QLoRA recipe" in quant.text


def test_statements_handle_ties_and_missing_values(study, specs):
    same = {k: dataclasses.replace(v, context_length=2048) for k, v in specs.items()}
    text = analysis.spec_statements(study, same, style=MD)[0].text
    assert text == "All 3 models have the same context length, 2,048 tokens."

    tie = dict(specs)
    tie["securix-llama-2-qlora"] = dataclasses.replace(specs["securix-llama-2-qlora"], context_length=4096)
    text = by_topic(analysis.spec_statements(study, tie, style=MD), "context")[0].text
    assert text.startswith(
        "Llama 2 7B chat finetune App and Securix Llama 2 Fine Tuning using QLora share the longest context, 4,096 tokens"
    )

    missing = dict(specs)
    missing["securix-gpt2"] = dataclasses.replace(specs["securix-gpt2"], context_length=None)
    text = by_topic(analysis.spec_statements(study, missing, style=MD), "context")[0].text
    assert "2× that of Securix Llama 2" in text
    assert text.endswith("The context length of Securix Fine Tune GPT Neo is not stated.")

    none = {k: dataclasses.replace(v, vocab_size=None) for k, v in specs.items()}
    assert (
        by_topic(analysis.spec_statements(study, none, style=MD), "vocabulary")[0].text == "No model states its vocabulary size."
    )


def test_conclusion_points(study, specs):
    points = [p.text for p in analysis.conclusion_points(study, specs, style=MD)]
    assert points[0].startswith("**Smallest to run:** Securix Fine Tune GPT Neo: 474.7 MiB")
    assert any(p.startswith("**Longest context:** Llama 2 7B chat finetune App, 4,096 tokens") for p in points)
    assert any(p.startswith("**Largest vocabulary:** Securix Fine Tune GPT Neo, 50,257") for p in points)


def test_statement_text_escapes_names(tmp_path):
    cfg = tiny_config(tmp_path, "m")
    cfg2 = tiny_config(tmp_path, "n", n_positions=512)
    path = write_study(
        tmp_path,
        f"""
title: t
models:
  - id: a
    name: "<img src=x onerror=alert(1)> *bold* [link](http://x)"
    config: {cfg}
  - id: b
    name: B
    config: {cfg2}
""",
    )
    study = load_config(path)
    text = " ".join(s.text for s in analysis.spec_statements(study, study_specs(study), style=MD))
    assert "<img" not in text and "&lt;img" in text
    assert "\\*bold\\*" in text and "\\[link\\]" in text


# ------------------------------------------------------------------------------------------------
# claims


def test_parse_check_forms():
    check = parse_check("a.context_length > 2 * b-2.x.context_length and c.vocab_size >= 32_000 and 1.5e3 != d.y")
    assert [str(c) for c in check.comparisons] == [
        "a.context_length > 2 * b-2.x.context_length",
        "c.vocab_size >= 32000",
        "1500 != d.y",
    ]
    assert check.references == [("a", "context_length"), ("b-2.x", "context_length"), ("c", "vocab_size"), ("d", "y")]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("a.x >", "ends too early"),
        ("a.x 2", "expected a comparison operator"),
        ("a.x > b.y or c.z < 1", "only 'and' joins comparisons"),
        ("a.x > b.y c.z < 1", "expected 'and' between comparisons"),
        ("a.x > b.y and", "ends too early"),
        ("1 < 2", "compares two numbers"),
        ("a.x * 2 > b.y", "factor first"),
        ("a.x > b.y + 1", "'+' is neither a number nor MODEL.FIELD"),
        ("a.x > (b.y)", "neither a number nor MODEL.FIELD"),
        ("__import__('os').system('true') == 0", "neither a number nor MODEL.FIELD"),
        ("len(a.x) > 1", "neither a number nor MODEL.FIELD"),
        ("", "empty check"),
    ],
)
def test_parse_check_rejects(text, problem):
    with pytest.raises(ConfigError) as err:
        parse_check(text, 2)
    message = err.value.format_message()
    assert message.startswith("claims[2].check: ") and problem in message


def test_assignment_claims_all_pass(study, table):
    results = analysis.check_claims(study, table)
    assert len(results) == len(study.claims) >= 5
    assert all(r.passed for r in results)
    first = results[0]
    assert first.values == {
        "llama-2-chat.context_length": 4096,
        "securix-gpt2.context_length": 1024,
        "securix-llama-2-qlora.context_length": 2048,
    }


def test_seed_false_claims_fail_with_numbers():
    study = load_config(FALSE_CLAIMS)
    table = spec_table(study_specs(study))
    with pytest.raises(ClaimError) as err:
        analysis.check_claims(study, table)
    message = err.value.format_message()
    assert message.startswith("2 claims are false:")
    assert (
        "claim 'Model 1 and 2 have a lower maximum position embedding compared to Model 3.' is false: "
        "llama-2-chat.context_length = 4096, securix-gpt2.context_length = 1024, "
        "securix-llama-2-qlora.context_length = 2048"
    ) in message
    assert f"(claims[0] at {FALSE_CLAIMS}:18)" in message
    assert (
        "claim 'Model 3 has a smaller vocabulary size.' is false: securix-gpt2.vocab_size = 50257, "
        "llama-2-chat.vocab_size = 32000"
    ) in message
    assert f"(claims[1] at {FALSE_CLAIMS}:20)" in message

    results = analysis.check_claims(study, table, strict=False)
    assert [r.passed for r in results] == [False, False]
    assert [str(c) for c in results[0].failed] == [
        "llama-2-chat.context_length < securix-gpt2.context_length",
        "securix-llama-2-qlora.context_length < securix-gpt2.context_length",
    ]


def claim_study(tmp_path, check: str):
    return load_config(
        write_study(
            tmp_path,
            f"""
title: t
models:
  - id: llama-2-chat
    name: A
    config: {ROOT}/configs/assignment/llama-2-7b-chat-finetune-app/config.json
claims:
  - text: something
    check: "{check}"
""",
        )
    )


@pytest.mark.parametrize(
    "check, problem",
    [
        ("llama-2-chat.context_lenght > 1", "unknown field 'context_lenght'. Did you mean 'context_length'?"),
        ("llama-2-chta.context_length > 1", "unknown model 'llama-2-chta'. Did you mean 'llama-2-chat'?"),
        ("llama-2-chat.architecture > 1", "is 'LlamaForCausalLM', not a number"),
        ("llama-2-chat.context_length >", "the check ends too early"),
    ],
)
def test_claim_errors_name_file_and_line(tmp_path, table, check, problem):
    study = claim_study(tmp_path, check)
    with pytest.raises(ConfigError) as err:
        analysis.check_claims(study, table)
    message = err.value.format_message()
    assert message.startswith(f"{study.path}:9: claims[0].check: ") and problem in message


def test_claim_on_a_missing_value_cannot_be_checked(tmp_path, table):
    study = claim_study(tmp_path, "llama-2-chat.adapter_r > 1")
    with pytest.raises(ClaimError) as err:
        analysis.check_claims(study, table)
    assert "cannot be checked (llama-2-chat.adapter_r not stated)" in err.value.format_message()


def test_float_equality_is_tolerant(tmp_path, table):
    share = table_value(table, "securix-llama-2-qlora", "adapter_share_of_base")
    study = load_config(
        write_study(
            tmp_path,
            f"""
title: t
models:
  - id: m
    name: M
    config: {ROOT}/configs/assignment/llama-2-7b-chat-finetune-app/config.json
claims:
  - text: exact share
    check: "securix-llama-2-qlora.adapter_share_of_base == {share!r} and 0.1 * llama-2-chat.context_length == 409.6"
""",
        )
    )
    assert analysis.check_claims(study, table)[0].passed


# ------------------------------------------------------------------------------------------------
# consistency warnings


def test_assignment_warnings(study, specs):
    warnings = analysis.consistency_warnings(study, specs, style=MD)
    neo = [w for w in warnings if "GPT-Neo" in w]
    assert len(neo) == 1
    assert neo[0].startswith(
        "Securix Fine Tune GPT Neo: the name says “GPT-Neo”, but config.json describes a GPT-2 model (GPT2LMHeadModel"
    )
    tags = [w for w in warnings if "text2text-generation" in w]
    assert len(tags) == 3 and all("should be `text-generation`" in w for w in tags)
    peft = [w for w in warnings if "library PEFT" in w]
    assert [w.split(":")[0] for w in peft] == [
        "Llama 2 7B chat finetune App",
        "Securix Fine Tune GPT Neo",
    ]  # model 2 has its adapter
    assert len(warnings) == 6
    assert sum(map(len, analysis.warnings_by_model(study, specs, style=MD).values())) == 6


def test_warnings_for_seq2seq_and_names(tmp_path):
    t5 = tiny_config(
        tmp_path,
        "t5",
        architectures=["T5ForConditionalGeneration"],
        model_type="t5",
        d_model=32,
        d_ff=64,
        num_layers=1,
        num_heads=2,
        d_kv=16,
        vocab_size=100,
    )
    neox = tiny_config(
        tmp_path,
        "neox",
        architectures=["GPTNeoXForCausalLM"],
        model_type="gpt_neox",
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_hidden_layers=1,
        vocab_size=100,
        max_position_embeddings=64,
    )
    llama = tiny_config(
        tmp_path,
        "llama",
        architectures=["LlamaForCausalLM"],
        model_type="llama",
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_hidden_layers=1,
        vocab_size=100,
        max_position_embeddings=64,
    )
    gpt2 = tiny_config(tmp_path, "gpt2")
    study = load_config(
        write_study(
            tmp_path,
            f"""
title: t
models:
  - id: t5
    name: Flan-T5 summariser
    config: {t5}
    card: {{pipeline_tag: text-generation}}
  - id: neox
    name: Pythia GPT-NeoX 70M
    config: {neox}
  - id: tinyllama
    name: TinyLlama Dolphin chat 7B
    config: {llama}
  - id: wrong
    name: Mistral-style BERT
    config: {gpt2}
    card: {{library: peft, pipeline_tag: text-generation}}
""",
        )
    )
    warnings = analysis.consistency_warnings(study, study_specs(study), style=MD)
    assert any(
        w.startswith("Flan-T5 summariser: the card's pipeline tag is `text-generation`") and "`text2text-generation`" in w
        for w in warnings
    )
    assert not any(w.startswith("Pythia") and "the name says “" in w for w in warnings)  # GPT-NeoX is not read as GPT-Neo
    assert any(w.startswith("Pythia GPT-NeoX 70M: the name says 70M parameters") for w in warnings)
    tiny = [w for w in warnings if w.startswith("TinyLlama")]
    assert len(tiny) == 1 and "the name says 7B parameters" in tiny[0]  # no family warning: it is a Llama; no "phi" in Dolphin
    wrong = [w for w in warnings if w.startswith("Mistral-style BERT")]
    assert any("the name says “Mistral” and “BERT”" in w for w in wrong)
    assert any("library PEFT" in w for w in wrong)
    assert not any("pipeline tag" in w for w in wrong)


def test_adapter_task_type_mismatch(tmp_path):
    t5 = tiny_config(
        tmp_path,
        "t5",
        architectures=["T5ForConditionalGeneration"],
        model_type="t5",
        d_model=32,
        d_ff=64,
        num_layers=1,
        num_heads=2,
        d_kv=16,
        vocab_size=100,
    )
    adapter = tmp_path / "adapter_config.json"
    adapter.write_text(
        json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q", "v"], "task_type": "CAUSAL_LM"})
    )
    study = load_config(
        write_study(
            tmp_path,
            f"""
title: t
models:
  - id: t5
    name: Some model
    config: {t5}
    adapter: {{config: {adapter}}}
""",
        )
    )
    specs = study_specs(study)
    assert specs["t5"].adapter.trainable_parameters > 0
    warnings = analysis.consistency_warnings(study, specs, style=MD)
    assert warnings == ["Some model: the adapter's task_type is `CAUSAL_LM`, but the base model is a seq2seq-lm model."]


def test_bits_per_byte_statement_follows_the_intervals():
    import types

    import pandas as pd

    from reportgen.analysis.phrasing import phrase
    from reportgen.analysis.results import lm_finding

    def _lm_statement(tables, names):
        return phrase(lm_finding(tables), names, MD)

    def lm(rows):
        return types.SimpleNamespace(
            lm=pd.DataFrame(
                [{"model_id": m, "bits_per_byte": v, "bpb_ci_low": lo, "bpb_ci_high": hi, "n_texts": 4} for m, v, lo, hi in rows]
            )
        )

    names = {"a": "A", "b": "B", "c": "C"}
    close = _lm_statement(lm([("a", 1.063, 0.90, 1.21), ("b", 1.063, 0.90, 1.21), ("c", 1.064, 0.91, 1.21)]), names)
    assert "A and B score lowest (the same value)" in close.text and "C overlap theirs" in close.text
    assert "clearly worse" not in close.text
    apart = _lm_statement(lm([("a", 1.0, 0.95, 1.05), ("c", 1.5, 1.4, 1.6)]), names)
    assert "A scores lowest" in apart.text and "C is clearly worse" in apart.text


# ------------------------------------------------------------------------------------------------
# significance text agrees with itself


def _pairwise_tables(p_value: float, p_holm: float, ci: tuple[float, float], *, comparisons: int = 10):
    """Five models' BLEU means and the pairwise frame of paired_comparisons: the best two differ by 0.039 with
    ``ci`` (unadjusted) and ``p_value`` / ``p_holm``; the other pairs are far from significant."""
    import itertools
    import types

    import pandas as pd

    from reportgen.stats.frames import PAIRWISE_COLUMNS

    means = {"a": 2.339, "b": 1.8, "c": 1.9, "d": 2.3, "e": 2.0}
    summary = pd.DataFrame(
        [
            {"model_id": m, "metric": "bleu", "mean": v, "ci_low": v - 1, "ci_high": v + 1.5, "n": 24, "ci_method": "BCa"}
            for m, v in means.items()
        ]
    )
    pairs = [("a", "d")] + [pair for pair in itertools.combinations(means, 2) if pair != ("a", "d")]
    rows = []
    for x, y in pairs[:comparisons]:
        first = (x, y) == ("a", "d")
        rows.append(
            {
                "metric": "bleu",
                "model_a": x,
                "model_b": y,
                "n": 24,
                "mean_a": means[x],
                "mean_b": means[y],
                "diff": 0.039 if first else means[x] - means[y],
                "ci_low": ci[0] if first else -1.0,
                "ci_high": ci[1] if first else 1.0,
                "p_value": p_value if first else 0.5,
                "p_holm": p_holm if first else 1.0,
                "significant": p_holm < 0.05 if first else False,
                "better": ("a" if p_holm < 0.05 else None) if first else None,
            }
        )
    return types.SimpleNamespace(summary=summary, pairwise=pd.DataFrame(rows, columns=PAIRWISE_COLUMNS))


NAMES_5 = {m: m.upper() for m in "abcde"}


def test_a_verdict_is_printed_with_the_p_value_it_rests_on_not_a_contradicting_interval():
    """The demo's BLEU line: the unadjusted interval excludes 0, the Holm-adjusted p-value does not reach 0.05."""
    from reportgen.analysis.phrasing import phrase
    from reportgen.analysis.results import best_finding

    tables = _pairwise_tables(0.012, 0.12, (0.0031, 0.1))
    finding = best_finding(tables, "bleu")
    assert finding.numbers["verdict"] == "not_significant" and finding.numbers["p_holm"] == 0.12
    text = phrase(finding, NAMES_5).text
    assert "A and D are not significantly different on BLEU" in text
    # the interval is labelled as not adjusted, and the adjusted p-value the verdict used is beside it
    assert "diff 0.039, unadjusted 95% CI [0.0031, 0.1], Holm-adjusted p = 0.120 over 10 comparisons" in text, text
    assert "95% CI [0.0031" not in text.replace("unadjusted 95% CI [0.0031", "")


def test_a_significant_verdict_shows_its_adjusted_p_value_too():
    from reportgen.analysis.phrasing import phrase
    from reportgen.analysis.results import best_finding

    text = phrase(best_finding(_pairwise_tables(0.001, 0.01, (0.0031, 0.1)), "bleu"), NAMES_5).text
    assert "significantly better than the runner-up D" in text
    assert "unadjusted 95% CI [0.0031, 0.1], Holm-adjusted p = 0.010 over 10 comparisons" in text, text


def test_one_comparison_needs_no_adjustment_label():
    from reportgen.analysis.phrasing import phrase
    from reportgen.analysis.results import best_finding

    tables = _pairwise_tables(0.2, 0.2, (-0.01, 0.1), comparisons=1)
    tables.summary = tables.summary[tables.summary["model_id"].isin(["a", "d"])]
    text = phrase(best_finding(tables, "bleu"), NAMES_5).text
    assert "(diff 0.039, 95% CI [-0.01, 0.1], p = 0.200)" in text and "unadjusted" not in text and "Holm" not in text


def test_the_verdict_line_on_no_clear_winner_is_short_and_keeps_the_p_value():
    """The verdict (read first, on one screen) leaves the difference and its interval to the analysis it links
    to, but keeps the Holm-adjusted p-value the call rests on, against the runner-up."""
    import dataclasses

    from reportgen.analysis.conclusion import _best
    from reportgen.analysis.phrasing import phrase

    finding = _best(_pairwise_tables(0.012, 0.12, (0.0031, 0.1)), "bleu")
    verdict = dataclasses.replace(finding, kind="verdict.quality", numbers={**finding.numbers, "source": "conclusion.best"})
    text = phrase(verdict, NAMES_5).text
    assert text.startswith("Best BLEU: no clear winner. A has the highest mean")
    assert text.endswith("not significantly ahead of any other model (against D: Holm-adjusted p = 0.120 over 10 comparisons).")
    assert "CI" not in text and "diff" not in text
    full = phrase(finding, NAMES_5).text
    assert len(text) < len(full) and "unadjusted 95% CI" in full


def test_the_conclusion_shows_the_adjusted_p_value_beside_the_interval():
    from reportgen.analysis.conclusion import _best
    from reportgen.analysis.phrasing import phrase

    text = phrase(_best(_pairwise_tables(0.012, 0.12, (0.0031, 0.1)), "bleu"), NAMES_5).text
    assert "Best BLEU: no clear winner." in text
    assert "(against D: diff 0.039, unadjusted 95% CI [0.0031, 0.1], Holm-adjusted p = 0.120 over 10 comparisons)" in text


def test_retraining_changes_show_their_p_value():
    import types

    import pandas as pd

    from reportgen.analysis.history import retraining_finding
    from reportgen.analysis.phrasing import phrase

    deltas = pd.DataFrame(
        [
            {
                "metric": "exact_match",
                "n": 15,
                "mean_old": 1.0,
                "mean_new": 0.53,
                "diff": -0.47,
                "ci_low": -0.73,
                "ci_high": -0.2,
                "p_value": 0.0156,
                "significant": True,
                "improved": False,
            }
        ]
    )
    delta = types.SimpleNamespace(model_id="m", deltas=deltas, worse=["exact_match"], better=[])
    text = phrase(retraining_finding(delta), {"m": "M"}).text
    assert "exact match 1.00 → 0.53 (change -0.47, 95% CI [-0.73, -0.20], p = 0.016)" in text, text


def test_best_as_shown_compares_printed_values():
    from reportgen.stats.metrics import metric_value

    shown = lambda v: metric_value("bits_per_byte", v)  # noqa: E731
    assert analysis.best_as_shown({"a": 1.0631, "b": 1.0634, "c": 1.2}, False, shown) == ["a", "b"]
    assert analysis.best_as_shown({"a": 1.0631, "b": 1.07, "c": float("nan")}, False, shown) == ["a"]
    assert analysis.best_as_shown({"a": 5.0, "b": 4.0}, None, shown) == []  # no direction: no best
    assert analysis.best_as_shown({"a": 5.0}, True, shown) == []  # one value: nothing to compare


def test_bits_per_byte_ties_as_printed():
    """Four models print 1.063: the sentence names all four as lowest, as the table shows them."""
    import types

    import pandas as pd

    from reportgen.analysis.phrasing import phrase
    from reportgen.analysis.results import lm_finding

    rows = [("a", 1.06312, 0.907), ("b", 1.102, 0.954), ("c", 1.06312, 0.907), ("d", 1.06329, 0.908), ("e", 1.06301, 0.909)]
    lm = pd.DataFrame(
        [{"model_id": m, "bits_per_byte": v, "bpb_ci_low": lo, "bpb_ci_high": lo + 0.3, "n_texts": 4} for m, v, lo in rows]
    )
    finding = lm_finding(types.SimpleNamespace(lm=lm))
    assert sorted(finding.numbers["tied"]) == ["a", "c", "d", "e"]
    assert "score lowest (the same value)" in phrase(finding, NAMES_5).text


def test_the_terminal_prints_the_adjusted_p_value_of_significant_pairs():
    import io

    from rich.console import Console

    from reportgen.cli.metrics import print_significant_pairs

    tables = _pairwise_tables(0.001, 0.01, (0.0031, 0.1))
    out = Console(file=io.StringIO(), width=400)
    print_significant_pairs(tables.pairwise[tables.pairwise["significant"]], out)
    text = out.file.getvalue()
    assert "Holm-adjusted p" in text and "unadjusted 95% CI" in text
    assert "0.010" in text and "[0.0031, 0.1]" in text
