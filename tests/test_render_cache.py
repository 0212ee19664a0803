"""Render without rework: spec facts and chart SVGs come back from the user cache by content digest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from reportgen.specs import cache as spec_cache  # noqa: E402
from reportgen.specs import study as specs_study  # noqa: E402
from reportgen.specs.study import study_specs  # noqa: E402
from reportgen.study.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = ROOT / "configs" / "assignment.yaml"
HEAVY = ("torch", "transformers", "kaleido", "choreographer", "gguf", "weasyprint")

# Render the assignment's README in a fresh interpreter; print which heavy modules it imported. With a third
# argument "cached", counting a spec or exporting an SVG raises: the render must take both from the cache.
PROBE = """
import json, sys
from pathlib import Path
from reportgen.report import charts
from reportgen.report.assemble import render_report
from reportgen.specs import study
from reportgen.study.config import load_config
if sys.argv[3:] == ["cached"]:
    def recomputed(*args, **kwargs):
        raise SystemExit("recomputed: not served from the cache")
    study._compute_spec = recomputed
    charts.ChartSet._export = recomputed
paths = render_report(load_config(sys.argv[1]), formats=["markdown"], out_dir=sys.argv[2])
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
""".format(heavy=HEAVY)


def _render_in_subprocess(cache: Path, out: Path, *flags: str) -> list[str]:
    env = {**os.environ, "REPORTGEN_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(ASSIGNMENT), str(out), *flags],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_rerender_imports_neither_torch_nor_a_browser(tmp_path):
    cache = tmp_path / "cache"
    first = _render_in_subprocess(cache, tmp_path / "one")
    assert "torch" in first and "transformers" in first  # the cold render counted parameters on the meta device
    assert sorted(p.name for p in (cache / "specs").glob("*.json"))  # ... and remembered them
    svgs = sorted((cache / "charts").glob("*.svg"))
    assert svgs, "the cold render exported its chart"

    second = _render_in_subprocess(cache, tmp_path / "two", "cached")  # counting or exporting again would raise
    assert second == [], f"a re-render imported {second}"
    assert (tmp_path / "one" / "README.md").read_bytes() == (tmp_path / "two" / "README.md").read_bytes()
    assert (tmp_path / "one" / "charts" / "spec-size.svg").read_bytes() == (
        tmp_path / "two" / "charts" / "spec-size.svg"
    ).read_bytes()


def test_cached_specs_equal_computed_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    study = load_config(ASSIGNMENT)
    computed = study_specs(study)
    entries = list((tmp_path / "cache" / spec_cache.KIND).glob("*.json"))
    assert len(entries) == len(computed) == 3

    def recomputed(*args, **kwargs):
        raise AssertionError("a spec was computed again, not read from the cache")

    monkeypatch.setattr(specs_study, "_compute_spec", recomputed)
    assert study_specs(study) == computed  # read back from the entries
    for spec in computed.values():
        assert spec_cache.spec_from_dict(json.loads(json.dumps(spec.as_dict()))) == spec


def test_an_edited_config_is_counted_again(tmp_path, monkeypatch):
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "study"
    shutil.copytree(ROOT / "configs" / "assignment", folder / "assignment")
    shutil.copy(ASSIGNMENT, folder / "assignment.yaml")
    before = study_specs(load_config(folder / "assignment.yaml"))["securix-gpt2"]

    config = folder / "assignment" / "securix-gpt2" / "config.json"
    data = json.loads(config.read_text())
    data["n_layer"] = data["n_layer"] + 1
    config.write_text(json.dumps(data))
    after = study_specs(load_config(folder / "assignment.yaml"))["securix-gpt2"]
    assert after.num_hidden_layers == before.num_hidden_layers + 1
    assert after.parameters > before.parameters  # counted again, not served from the old entry
    assert len(list((tmp_path / "cache" / spec_cache.KIND).glob("*.json"))) == 4


def test_a_changed_figure_is_a_new_svg_key():
    import plotly.graph_objects as go

    from reportgen.report.charts import ChartSet, _svg_key

    charts = ChartSet()
    a = charts.add("a", go.Figure(go.Bar(x=["x"], y=[1])), "A")
    b = charts.add("b", go.Figure(go.Bar(x=["x"], y=[2])), "B")
    same = ChartSet().add("a", go.Figure(go.Bar(x=["x"], y=[1])), "A")
    assert _svg_key(a) == _svg_key(same) != _svg_key(b)


def test_a_cached_gguf_spec_keeps_its_tensor_types_in_their_order(tmp_path, monkeypatch):
    """The spec cache returns the GGUF tensor-type histogram in the order it was computed (most tensors
    first), so a report rendered from the cache is the report rendered fresh (the JSON entry once sorted
    the keys, and the demo's list changed order between renders)."""
    import numpy as np

    gguf = __import__("pytest").importorskip("gguf")
    from reportgen.specs.study import spec_for_model
    from reportgen.study.config import ModelConfig

    path = tmp_path / "mixed.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float16))  # one F16 tensor
    for name in ("blk.0.attn_norm.weight", "blk.0.ffn_norm.weight", "output_norm.weight"):  # three F32 ones
        writer.add_tensor(name, np.zeros((4,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    model = ModelConfig(id="m", name="m", source={"type": "gguf", "path": str(path)})
    fresh = spec_for_model(model)
    monkeypatch.setattr(specs_study, "_compute_spec", lambda *a: (_ for _ in ()).throw(AssertionError("computed again")))
    cached = spec_for_model(model)  # read back from the entry just written
    assert fresh is not None and cached is not None
    assert list(fresh.gguf_tensor_types.items()) == [("F32", 3), ("F16", 1)]  # most first, not alphabetical
    assert list(cached.gguf_tensor_types.items()) == list(fresh.gguf_tensor_types.items())
