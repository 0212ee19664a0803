"""Hostile and broken input files: alias bombs, huge files, bytes that are not UTF-8, bad JSON.

Each must end as one line naming the file (exit 2), without a traceback or a memory blow-up, after bounded
work: an alias bomb is refused after a walk linear in the file (counted) and before anything is
constructed from it; an oversized file is refused before one byte of it is read (counted).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from reportgen.cli import main
from reportgen.errors import ConfigError
from reportgen.study.config import load_config
from reportgen.study.prompts import load_prompt_set
from reportgen.util import safeio
from reportgen.util.safeio import MAX_YAML_NODES, check_yaml_expansion, read_json_object

BOMB = textwrap.dedent(
    """\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    title: *i
    models: []
    """
)

GOOD = """\
title: A study
prompts: prompts.yaml
models:
  - id: base
    name: Base model
    source: {type: local, path: model}
"""


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def bounded_yaml(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the work YAML loading does: nodes the expansion check visits (refused past 10,000: a walk that
    expands aliases would visit 9**9 of them) and documents constructed into Python objects."""
    work = {"visited": 0, "constructed": 0}
    children, construct = safeio._children, yaml.constructor.BaseConstructor.construct_document

    def counted_children(node):
        work["visited"] += 1
        if work["visited"] > 10_000:
            raise AssertionError("the alias check walks the expanded tree, not the composed graph")
        return children(node)

    def counted_construct(self, node):
        work["constructed"] += 1
        return construct(self, node)

    monkeypatch.setattr(safeio, "_children", counted_children)
    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_document", counted_construct)
    return work


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of every read reportgen's safe reader makes from a file."""
    reads: list[int] = []

    class Counted:
        def __init__(self, handle):
            self._handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._handle.close()

        def fileno(self):
            return self._handle.fileno()

        def read(self, size=-1):
            data = self._handle.read(size)
            reads.append(len(data))
            return data

    monkeypatch.setattr(safeio, "open", lambda *args, **kwargs: Counted(open(*args, **kwargs)), raising=False)
    return reads


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    (tmp_path / "prompts.yaml").write_text("prompts:\n  - id: one\n    prompt: Say one.\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    return tmp_path


@pytest.mark.parametrize("command", ["validate", "specs"])
def test_alias_bomb_fails_fast_with_one_line(study_dir: Path, command: str, bounded_yaml: dict[str, int]):
    config = study_dir / "study.yaml"
    config.write_text(BOMB)
    one_line_error(cli(command, str(config)), str(config), "alias")
    # each node of the composed graph visited twice (down, then up): the mapping, its 11 keys, list a and
    # its 9 scalars, lists b to i (their items are aliases: shared nodes), "[]"; title is an alias.
    # validate reads the file twice (the config, then the pass that lists every problem of it).
    reads = {"validate": 2, "specs": 1}[command]
    assert bounded_yaml == {"visited": reads * 2 * (1 + 11 + 10 + 8 + 1), "constructed": 0}


def test_alias_bomb_as_prompt_set(study_dir: Path):
    prompts = study_dir / "bomb.yaml"
    prompts.write_text(BOMB)
    with pytest.raises(ConfigError, match="alias"):
        load_prompt_set(prompts)


def test_recursive_alias_is_refused(tmp_path: Path):
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(ConfigError, match="recursive"):
        load_config(path)


def test_modest_aliases_still_work(study_dir: Path):
    config = study_dir / "study.yaml"
    config.write_text(
        GOOD + "  - id: other\n    name: Other\n    source: &src {type: local, path: model}\n"
        "  - id: third\n    name: Third\n    source: *src\n"
    )
    study = load_config(config)
    assert [m.id for m in study.models] == ["base", "other", "third"]


def test_expansion_count_is_exact_below_the_limit():
    node = yaml.compose("a: &x [1, 2]\nb: [*x, *x]\n", Loader=yaml.SafeLoader)
    # mapping + 2 keys + list x (3 nodes) + list b (1 + 2 * 3)
    assert check_yaml_expansion(node, "f") == 1 + 2 + 3 + 7
    assert MAX_YAML_NODES >= 10_000


@pytest.mark.parametrize("name", ["study.yaml", "prompts.jsonl"])
def test_a_60_mb_file_is_refused_before_reading(study_dir: Path, name: str, bytes_read: list[int]):
    path = study_dir / name
    with open(path, "wb") as handle:
        handle.truncate(60 * 1024 * 1024)  # sparse: 60 MB without writing 60 MB
    if name.endswith(".yaml"):
        result = cli("validate", str(path))
        line = one_line_error(result, str(path), "60.0 MiB", "limit")
    else:
        with pytest.raises(ConfigError) as info:
            load_prompt_set(path)
        line = str(info.value)
        assert "60.0 MiB" in line and "32.0 MiB limit" in line and str(path) in line
    assert bytes_read == [], line  # refused from its size, before one byte was read


def test_config_that_is_not_utf8(study_dir: Path):
    config = study_dir / "study.yaml"
    config.write_bytes(GOOD.replace("A study", "Caf\xe9 study").encode("latin-1"))
    line = one_line_error(cli("validate", str(config)), f"{config}:1:", "not UTF-8", "0xe9", "offset 10")
    assert "Fix:" in line


@pytest.mark.parametrize("suffix", [".yaml", ".jsonl"])
def test_prompt_file_that_is_not_utf8(study_dir: Path, suffix: str):
    prompts = study_dir / f"prompts{suffix}"
    if suffix == ".yaml":
        prompts.write_bytes(b"prompts:\n  - id: one\n    prompt: Say \xff.\n")
    else:
        prompts.write_bytes(b'{"id": "one", "prompt": "ok"}\n{"id": "two", "prompt": "Say \xfe"}\n')
    config = study_dir / "study.yaml"
    config.write_text(GOOD.replace("prompts.yaml", prompts.name))
    line = one_line_error(cli("validate", str(config)), str(prompts), "not UTF-8")
    assert (":3:" in line and "0xff" in line) if suffix == ".yaml" else (":2:" in line and "0xfe" in line)


def test_bom_is_accepted(study_dir: Path):
    config = study_dir / "study.yaml"
    config.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert load_config(config).title == "A study"


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": ' + b"9" * 6000 + b"}", "invalid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"a": 1,}', "config.json:1: invalid JSON"),
    ],
)
def test_json_reader(tmp_path: Path, content: bytes, needle: str):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=needle):
        read_json_object(path, "config.json")


CARD_BOMB = "---\n" + BOMB.replace("title: *i\nmodels: []\n", "tags: *i\n") + "---\n# card\n"
CARD_ALIASES = "---\nlicense: &l mit\ntags: &t [code, chat]\nlanguage: *t\nbase_model: *l\n---\n# card\n"


def test_init_refuses_an_alias_bomb_in_front_matter(tmp_path: Path, bounded_yaml: dict[str, int]):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "README.md").write_text(CARD_BOMB)
    one_line_error(cli("init", str(model), "-o", str(tmp_path / "s.yaml")), str(model / "README.md"), "alias")
    # as above: the mapping, its 10 keys (a to i, tags), list a and its 9 scalars, lists b to i
    assert bounded_yaml == {"visited": 2 * (1 + 10 + 10 + 8), "constructed": 0}


def test_init_never_writes_aliases(tmp_path: Path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "README.md").write_text(CARD_ALIASES)
    out = tmp_path / "s.yaml"
    result = cli("init", str(model), "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "&" not in text and "*" not in text, text
    card = yaml.safe_load(text)["models"][0]["card"]
    assert card["tags"] == ["code", "chat"] and card["language"] == ["code", "chat"] and card["license"] == "mit"


def test_init_card_that_is_not_utf8(tmp_path: Path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "README.md").write_bytes(b"---\nlicense: caf\xe9\n---\n")
    one_line_error(cli("init", str(model), "-o", str(tmp_path / "s.yaml")), "README.md:2:", "not UTF-8")


@pytest.mark.parametrize(
    "content, needle",
    [
        ("{not json", "adapter_config.json:1: invalid JSON"),
        ("[]", "must be a JSON object"),
        (json.dumps({"base_model_name_or_path": 7}), "base_model_name_or_path must be a string"),
    ],
)
def test_init_broken_adapter_config(tmp_path: Path, content: str, needle: str):
    adapter = tmp_path / "a"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(content)
    one_line_error(cli("init", str(adapter), "-o", str(tmp_path / "s.yaml")), needle)
