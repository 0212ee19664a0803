"""Benchmark: do models really run at once on a Ray cluster? Four models, sequential vs Ray.

A test backend (registered only here and in the tests) whose generation sleeps a fixed time per token, so
each model's work takes a known time and needs no CPU. The same study — four models, the same prompts —
runs once with the local engine (one model after another) and then with the Ray engine on local clusters of
1, 2 and 4 logical GPUs (one GPU per model). With N GPUs the Ray wall time should approach
ceil(4 / N) / 4 of the sequential one, plus Ray's start-up overhead, which is printed apart: the time to start
the cluster (ray.init) and the rest above the ideal (actor start, scheduling, the driver's store writes).

    .venv/bin/python bench/ray_scheduling.py [--prompts N] [--tokens N] [--sleep S] [--gpus 1,2,4]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reportgen.backends.base import Backend  # noqa: E402
from reportgen.records import GenerationResult, LoadInfo  # noqa: E402

SLEEP_PER_TOKEN_S = 0.05


class SleepBackend(Backend):
    """Generates ``max_new_tokens`` tokens per prompt by sleeping ``SLEEP_PER_TOKEN_S`` per decode step."""

    name = "sleep"

    def fingerprint_parts(self):
        return {"model": self.model.id, "sleep_per_token_s": SLEEP_PER_TOKEN_S}

    def load(self) -> LoadInfo:
        return LoadInfo(load_time_s=0.0, precision="none", device="cpu")

    def generate(self, requests):
        tokens = max(r.settings.max_new_tokens for r in requests)
        started, wall = time.perf_counter(), time.time()
        time.sleep(tokens * SLEEP_PER_TOKEN_S)  # one decode step per token, the whole batch at once
        elapsed = time.perf_counter() - started
        busy = {"busy_from": wall, "busy_to": wall + elapsed}  # when this batch ran, to show models overlapping
        return [
            GenerationResult(
                r.prompt_id, f"{self.model.id} says {r.prompt_id}", 4, r.settings.max_new_tokens, "length", elapsed, extra=busy
            )
            for r in requests
        ]


def sleep_study(folder: Path, *, models: int = 4, prompts: int = 8, tokens: int = 8, execution: str = "") -> Path:
    """A study config of ``models`` sleeping models (batch size 4) over ``prompts`` prompts."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompts.yaml").write_text(
        "prompts:\n" + "".join(f"  - {{id: p{i:03d}, prompt: 'Prompt {i}.'}}\n" for i in range(prompts))
    )
    lines = [
        f"title: Scheduling\nprompts: prompts.yaml\ngeneration: {{max_new_tokens: {tokens}}}\noutput: {{dir: {folder / 'report'}}}\n"
    ]
    if execution:
        lines.append(f"execution: {execution}\n")
    lines.append("models:\n")
    for i in range(models):  # the path is never read: the sleeping backend replaces the real one
        lines.append(f"  - {{id: m{i}, name: Model {i}, source: {{type: local, path: {folder}}}, batch_size: 4}}\n")
    (folder / "study.yaml").write_text("".join(lines))
    return folder / "study.yaml"


def use_sleep_backend() -> None:
    """Every model of a study gets the sleeping backend (the registry is not touched)."""
    import reportgen.run.plan as plan

    plan.create_backend = lambda model, config_index=None: SleepBackend(model)


def without_hardware_probe() -> None:
    """The run manifest's hardware probe (torch import, a bandwidth test) costs seconds that are the same for
    both engines and not scheduling: left out here."""
    import reportgen.util.hardware as hardware

    hardware.hardware_summary = lambda **_: {"skipped": "bench/ray_scheduling.py"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=SLEEP_PER_TOKEN_S, help="seconds per token")
    parser.add_argument("--gpus", default="1,2,4", help="logical GPU counts to try")
    parser.add_argument("--shard-size", type=int, default=4)
    args = parser.parse_args()
    globals()["SLEEP_PER_TOKEN_S"] = args.sleep

    import ray
    from ray import cloudpickle

    from reportgen.run.execute import LocalExecutor
    from reportgen.run.measure import WARMUP_NEW_TOKENS
    from reportgen.run.runner import run_study
    from reportgen.study.config import MeasureConfig, load_config

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers get the class with its settings
    use_sleep_backend()
    without_hardware_probe()
    models = 4
    # batches of 4, one sleep per token, after the warm-up batch each model runs once it has loaded (measure.warmup)
    warmup = MeasureConfig().warmup * min(WARMUP_NEW_TOKENS, args.tokens) * args.sleep
    per_model = math.ceil(args.prompts / 4) * args.tokens * args.sleep + warmup
    with tempfile.TemporaryDirectory() as tmp:
        study = load_config(sleep_study(Path(tmp) / "sequential", models=models, prompts=args.prompts, tokens=args.tokens))
        started = time.perf_counter()
        run_study(study, executor=LocalExecutor())
        sequential = time.perf_counter() - started
        print(
            f"{models} models x {args.prompts} prompts x {args.tokens} tokens at {args.sleep * 1000:.0f} ms/token "
            f"(ideal {per_model:.2f} s per model, {warmup:.2f} s of it the warm-up)"
        )
        print(f"sequential (engine: local): {sequential:6.2f} s")
        for gpus in [int(g) for g in args.gpus.split(",")]:
            started = time.perf_counter()
            ray.init(address="local", num_cpus=4, num_gpus=gpus, include_dashboard=False, logging_level="ERROR")
            init_s = time.perf_counter() - started
            study = load_config(
                sleep_study(
                    Path(tmp) / f"ray-{gpus}",
                    models=models,
                    prompts=args.prompts,
                    tokens=args.tokens,
                    execution=f"{{engine: ray, shard_size: {args.shard_size}, "
                    "resources: {default: {num_gpus: 1, num_cpus: 0}}}",
                )
            )
            started = time.perf_counter()
            summary = run_study(study)
            wall = time.perf_counter() - started
            ray.shutdown()
            assert all(m.error is None and m.prompts_run == args.prompts for m in summary.models), summary.models
            ideal = math.ceil(models / gpus) * per_model
            print(
                f"ray, {gpus} logical GPU(s): {wall:6.2f} s run (ideal {ideal:.2f} s, overhead {wall - ideal:+.2f} s), "
                f"{init_s:.2f} s ray.init; speed-up {sequential / wall:.2f}x (x{sequential / (wall + init_s):.2f} with ray.init)"
            )


if __name__ == "__main__":
    main()
