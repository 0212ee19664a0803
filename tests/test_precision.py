"""dtype: bfloat16 on the transformers backend: it runs in bf16, says so, and notes whether the CPU has it natively."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from reportgen.backends.transformers.backend import TransformersBackend  # noqa: E402
from reportgen.backends.transformers.cpu import native_bf16_flags  # noqa: E402
from reportgen.records import GenerationRequest  # noqa: E402
from reportgen.study.config import GenerationSettings, ModelConfig  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "reportgen-cache"))


def _requests() -> list[GenerationRequest]:
    settings = GenerationSettings(max_new_tokens=6)
    return [
        GenerationRequest(
            prompt_id=f"p{i}", messages=({"role": "user", "content": text},), text=text, format="chat", settings=settings
        )
        for i, text in enumerate(["Hello there", "Two plus two is"])
    ]


def test_bfloat16_runs_in_bfloat16_and_says_so(tiny_llama_dir: Path):
    model = ModelConfig(id="m", name="m", source={"type": "local", "path": str(tiny_llama_dir)}, dtype="bfloat16")
    backend = TransformersBackend(model)
    info = backend.load()
    assert info.precision == "bfloat16"
    assert {p.dtype for p in backend.loaded.model.parameters()} == {torch.bfloat16}
    native = native_bf16_flags()
    assert any(("native" in note and (not native or native[0] in note)) for note in info.notes), info.notes
    results = backend.generate(_requests())
    assert [r.failed for r in results] == [False, False]
    assert all(r.output_tokens > 0 for r in results)


def test_the_flags_come_from_cpuinfo():
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.partition(":")[2].split())
                break
    except OSError:
        pass
    assert native_bf16_flags() == [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
