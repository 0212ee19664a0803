"""The Ray engine on real (local and simulated multi-node) Ray clusters, with tiny real models.

One cluster at a time for the whole session (starting Ray costs seconds): the local one with two
logical GPUs first, then a head and two nodes. Select with ``-m ray``; skip with ``-m 'not ray'``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from reportgen.backends.transformers.backend import TransformersBackend  # noqa: E402
from reportgen.records import RunManifest  # noqa: E402
from reportgen.run import plan  # noqa: E402
from reportgen.run.ray_executor import RayExecutor  # noqa: E402
from reportgen.run.runner import run_study  # noqa: E402
from reportgen.store import Store, store_path  # noqa: E402
from reportgen.study.config import load_config  # noqa: E402

pytestmark = pytest.mark.ray

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from ray_scheduling import SleepBackend, sleep_study  # noqa: E402


# Workers import this module and bench/ray_scheduling.py (for the test backends) by name.
WORKER_ENV = {"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "bench")])}}


class Clusters:
    """The session's one Ray cluster: asking for the other kind shuts the current one down first."""

    def __init__(self):
        self.kind: str | None = None
        self.cluster = None
        self.started_s: dict[str, float] = {}

    def local(self) -> None:
        if self.kind != "local":
            self.close()
            started = time.perf_counter()
            # address="local": a cluster of this session's own, even where another one runs on the machine (a
            # ray.init() with no address joins whatever /tmp/ray/ray_current_cluster names, and refuses num_gpus)
            ray.init(
                address="local",
                num_cpus=2,
                num_gpus=2,
                include_dashboard=False,
                logging_level="ERROR",
                runtime_env=WORKER_ENV,
            )
            self.started_s["local"] = time.perf_counter() - started
            self.kind = "local"

    def multi_node(self, cache_a: Path, cache_b: Path):
        """A head with no CPU (nothing runs there) and two nodes of two logical GPUs each; each node names
        itself with a custom resource and has its own Hugging Face cache (HF_HUB_CACHE in its environment)."""
        if self.kind != "multi":
            self.close()
            from ray.cluster_utils import Cluster

            started = time.perf_counter()
            self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
            for name, cache in (("node_a", cache_a), ("node_b", cache_b)):
                self.cluster.add_node(num_cpus=2, num_gpus=2, resources={name: 4}, env_vars={"HF_HUB_CACHE": str(cache)})
            ray.init(address=self.cluster.address, logging_level="ERROR", runtime_env=WORKER_ENV)
            self.cluster.wait_for_nodes()
            self.started_s["multi"] = time.perf_counter() - started
            self.kind = "multi"
        return self.cluster

    def close(self) -> None:
        if ray.is_initialized():
            ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None
        self.kind = None


@pytest.fixture(scope="session")
def clusters():
    manager = Clusters()
    yield manager
    manager.close()


@pytest.fixture
def local_ray(clusters):
    clusters.local()


def write_study(folder: Path, models: list[str], *, prompts: int = 6, execution: str = "", extra: str = "") -> Path:
    lines = ["prompts:"]
    for i in range(prompts):
        words = " ".join(["word"] * (i % 4 + 1))
        lines.append(f"  - {{id: p{i:03d}, prompt: 'Say {words} number {i}.', reference: 'number {i}'}}")
    (folder / "prompts.yaml").write_text("\n".join(lines) + "\n")
    text = f"title: Ray study\nprompts: prompts.yaml\ngeneration: {{max_new_tokens: 6}}\noutput: {{dir: {folder / 'report'}}}\n"
    if execution:
        text += f"execution: {execution}\n"
    (folder / "study.yaml").write_text(text + extra + "models:\n" + "".join(models))
    return folder / "study.yaml"


def model(model_id: str, source: str, batch_size: int = 2, extra: str = "") -> str:
    return f"  - id: {model_id}\n    name: {model_id}\n    source: {source}\n    batch_size: {batch_size}\n" + (
        f"    {extra}\n" if extra else ""
    )


def stored(study) -> list[tuple]:
    with Store(store_path(study)) as store:
        return [
            tuple(r)
            for r in store.db.execute(
                "SELECT model_id, fingerprint, prompt_id, request_hash, text, output_tokens, finish_reason FROM results "
                "ORDER BY model_id, prompt_id"
            ).fetchall()
        ]


def speed_passes(study) -> list[tuple]:
    """(model, regime, pass index, prompts) of every stored timed pass (each must have generated tokens), sorted."""
    with Store(store_path(study)) as store:
        rows = store.db.execute(
            "SELECT model_id, regime, pass_index, prompts, generated_tokens, seconds FROM timed_passes"
        ).fetchall()
    assert all(tokens > 0 and seconds > 0 for *_, tokens, seconds in rows), rows
    return sorted(tuple(r[:4]) for r in rows)


def manifest(study) -> RunManifest:
    with Store(store_path(study)) as store:
        (text,) = store.db.execute("SELECT manifest FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    return RunManifest.from_json(json.loads(text))


# ------------------------------------------------------------------------------ a local cluster, two logical GPUs


def test_ray_engine_stores_the_same_rows_as_the_local_engine(tmp_path, local_ray, tiny_llama_dir, tiny_gpt2_dir):
    models = [
        model("llama", f"{{type: local, path: {tiny_llama_dir}}}"),
        model("gpt2", f"{{type: local, path: {tiny_gpt2_dir}}}"),
    ]
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    measure = "measure: {warmup: 1, repeats: 2, prompts: 3}\n"
    local = load_config(write_study(tmp_path / "local", models, extra=measure))
    ray_engine = "{engine: ray, shard_size: 4, resources: {default: {num_gpus: 1}}}"
    on_ray = load_config(write_study(tmp_path / "ray", models, execution=ray_engine, extra=measure))
    assert on_ray.execution.engine == "ray" and local.execution.engine == "local"

    run_study(local)
    summary = run_study(on_ray)  # the runner picks the Ray executor from the config

    assert [m.error for m in summary.models] == [None, None]
    assert [m.prompts_run for m in summary.models] == [6, 6]
    assert stored(on_ray) == stored(local)  # same fingerprints, same greedy texts
    assert len(stored(on_ray)) == 12
    record = manifest(on_ray)
    assert record.engine == "ray" and record.cluster.ray_version == ray.__version__
    assert [n.gpus for n in record.cluster.nodes] == [2]
    placements = {p.model_id: p for p in record.cluster.placements}
    assert set(placements) == {"llama", "gpt2"}
    for p in placements.values():  # each actor saw the GPU Ray gave it, and only that one
        assert p.cuda_visible_devices == ",".join(p.gpu_ids) and len(p.gpu_ids) == 1
    assert {p.cuda_visible_devices for p in placements.values()} == {"0", "1"}
    assert manifest(local).engine == "local" and manifest(local).cluster is None
    expected = [(m, regime, i, 3) for m in ("gpt2", "llama") for regime in ("batched", "single") for i in (0, 1)]
    assert speed_passes(on_ray) == speed_passes(local) == expected  # both regimes' passes, each in the model's actor

    again = run_study(on_ray)  # everything stored: no actor, no run
    assert [m.prompts_run for m in again.models] == [0, 0] and again.run_id is None

    # Another measure protocol: the answers stay cached, only the timed passes run, in the actor
    remeasure = load_config(
        write_study(tmp_path / "ray", models, execution=ray_engine, extra="measure: {warmup: 1, repeats: 3, prompts: 3}\n")
    )
    (llama,) = run_study(remeasure, model_ids=["llama"]).models
    assert llama.error is None and (llama.prompts_run, llama.prompts_cached) == (0, 6)
    llama_passes = [(i, n) for m, regime, i, n in speed_passes(remeasure) if m == "llama" and regime == "batched"]
    assert llama_passes == [(0, 3), (0, 3), (1, 3), (1, 3), (2, 3)]  # the new protocol's 3 beside the old one's 2
    assert stored(remeasure) == stored(local)
    assert manifest(remeasure).cluster.placements[0].model_id == "llama"


MC_ITEMS = """multiple_choice:
  - {id: capital, context: 'The capital of France is', choices: [Paris, London, Rome], answer: 0}
  - {id: sum, context: Two plus two is, choices: [four, five], answer: four}
"""


def choice_rows(study) -> list[tuple]:
    with Store(store_path(study)) as store:
        return [
            tuple(r)
            for r in store.db.execute(
                "SELECT model_id, fingerprint, item_id, choice, request_hash, logprob, n_tokens, is_greedy FROM choice_loglik "
                "ORDER BY model_id, item_id, choice"
            ).fetchall()
        ]


def test_ray_actors_score_multiple_choice_like_the_local_engine(tmp_path, local_ray, tiny_llama_dir):
    """Multiple-choice items on the Ray engine: the actor scores the continuations after its shards, the driver
    stores the same rows as the local engine (log-likelihoods within 1e-5), and a second run has nothing to do."""
    models = [model("llama", f"{{type: local, path: {tiny_llama_dir}}}")]
    studies = {}
    for engine in ("local", "ray"):
        (tmp_path / engine).mkdir()
        execution = "{engine: ray, resources: {default: {num_gpus: 1}}}" if engine == "ray" else ""
        path = write_study(tmp_path / engine, models, prompts=2, execution=execution, extra="measure: {repeats: 0}\n")
        with (tmp_path / engine / "prompts.yaml").open("a") as prompts:
            prompts.write(MC_ITEMS)
        studies[engine] = load_config(path)
        assert run_study(studies[engine]).models[0].error is None
    local, on_ray = choice_rows(studies["local"]), choice_rows(studies["ray"])
    assert [r[:5] for r in on_ray] == [r[:5] for r in local] and len(local) == 5
    assert [r[5] for r in on_ray] == pytest.approx([r[5] for r in local], abs=1e-5)
    assert [r[6:] for r in on_ray] == [r[6:] for r in local]
    again = run_study(studies["ray"])
    assert again.run_id is None and choice_rows(studies["ray"]) == on_ray


class CrashOnce(TransformersBackend):
    """Kills its own worker process in its second batch, the first time only: with no warm-up and shards of two
    batches, that is the middle of its first shard, one batch of it already generated (and not yet stored)."""

    calls = 0

    def generate(self, requests):
        self.calls += 1
        marker = Path(self.model.source.path).with_name("crashed-once")
        if self.calls == 2 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return super().generate(requests)


def test_an_actor_that_dies_mid_shard_is_restarted_and_its_shard_retried(tmp_path, local_ray, tiny_llama_dir, monkeypatch):
    shutil.copytree(tiny_llama_dir, tmp_path / "llama")
    study = load_config(
        write_study(
            tmp_path,
            [model("llama", "{type: local, path: llama}")],
            prompts=8,
            execution="{engine: ray, shard_size: 4, max_restarts: 2, max_task_retries: 2}",
            extra="measure: {warmup: 0}\n",
        )
    )
    real = plan.create_backend
    monkeypatch.setattr(
        plan, "create_backend", lambda m, config_index=None: CrashOnce(m) if m.id == "llama" else real(m, config_index)
    )

    summary = run_study(study)

    marker = tmp_path / "crashed-once"
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker died, not the driver
    (result,) = summary.models
    assert result.error is None and result.prompts_run == 8  # 2 shards, each stored once
    rows = stored(study)
    assert len(rows) == 8 and len({r[2] for r in rows}) == 8  # every prompt, none twice
    with Store(store_path(study)) as store:
        (runs,) = store.db.execute("SELECT prompts_run FROM model_runs").fetchone()
        (count, distinct) = store.db.execute("SELECT COUNT(*), COUNT(DISTINCT prompt_id) FROM results").fetchone()
    assert runs == 8 and count == distinct == 8  # the retried shard counted and stored once


class InterruptAfterFirstShard:
    """A progress display whose user presses Ctrl-C as soon as the first shard is stored."""

    def add_task(self, description, total):
        return description

    def advance(self, task, advance):
        raise KeyboardInterrupt


def test_ctrl_c_stops_the_actors_and_the_next_run_redoes_no_stored_shard(tmp_path, local_ray, tiny_llama_dir):
    study = load_config(
        write_study(
            tmp_path,
            [model("llama", f"{{type: local, path: {tiny_llama_dir}}}")],
            prompts=8,
            execution="{engine: ray, shard_size: 2}",
        )
    )
    with pytest.raises(KeyboardInterrupt):
        run_study(study, progress=InterruptAfterFirstShard())
    assert len(stored(study)) == 2  # the first shard, committed before the interrupt
    deadline = time.monotonic() + 20
    while ray.available_resources().get("GPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # the actor was killed: its GPU is back
    assert ray.available_resources().get("GPU", 0) == 2

    (again,) = run_study(study).models
    assert again.error is None and (again.prompts_run, again.prompts_cached) == (6, 2)
    assert len(stored(study)) == 8


def stored_rows(database: Path) -> dict[tuple, tuple]:
    """Every stored result row, whole (run id and time included), by its key; read-only, while a driver writes."""
    if not database.exists():
        return {}
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT * FROM results").fetchall()
        (count,) = db.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT fingerprint, prompt_id, request_hash FROM results)"
        ).fetchone()
    except sqlite3.OperationalError:  # the driver has not created the tables yet
        return {}
    finally:
        db.close()
    assert count == len(rows)  # no key twice
    return {row[:3]: row for row in rows}


def test_a_driver_killed_mid_run_resumes_and_redoes_no_stored_batch(tmp_path, local_ray):
    """`reportgen run` in its own process (its own Ray driver, joining this cluster), killed with SIGKILL once its
    first shard is stored: its actor goes with it, and the next run stores only the shards that were missing."""
    from ray_scheduling import sleep_study

    address = ray.get_runtime_context().gcs_address
    config = sleep_study(
        tmp_path,
        models=1,
        prompts=16,
        tokens=25,  # 1.25 s per shard of 4: the run is mid-way for seconds
        execution=f"{{engine: ray, address: '{address}', shard_size: 4, resources: {{default: {{num_gpus: 1, num_cpus: 0}}}}}}",
    )
    database = store_path(load_config(config))
    command = [sys.executable, str(ROOT / "tests" / "sleep_cli.py"), "run", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "killed.log"
    with log.open("w") as out:
        driver = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and driver.poll() is None and not stored_rows(database):
                time.sleep(0.05)
            assert driver.poll() is None, log.read_text()  # still running after its first shard
            driver.send_signal(signal.SIGKILL)
        finally:
            driver.kill()
            driver.wait(timeout=30)
    assert driver.returncode == -signal.SIGKILL
    before = stored_rows(database)
    assert len(before) in (4, 8, 12), log.read_text()  # whole shards only, and not all of them

    deadline = time.monotonic() + 30
    while ray.available_resources().get("GPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # the dead driver's actor is gone with it: its GPU is back
    assert ray.available_resources().get("GPU", 0) == 2

    again = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"m0: 16 prompts ({16 - len(before)} run, {len(before)} cached)" in again.stderr, again.stderr
    after = stored_rows(database)
    assert len(after) == 16
    assert {key: after[key] for key in before} == before  # the stored shards were not redone (same run id, same time)
    first = {row[5] for row in before.values()}
    second = {row[5] for key, row in after.items() if key not in before}  # run ids
    assert len(first) == len(second) == 1 and first != second  # the rest came from the second run


def test_reportgen_run_with_address_null_starts_a_cluster_of_its_own(tmp_path, local_ray):
    """The README's one-machine way: `reportgen run` with `address: null` starts a local cluster of its own
    (not the one this session holds, even with RAY_ADDRESS pointing there) and runs the models' actors on it."""
    from ray_scheduling import sleep_study

    config = sleep_study(
        tmp_path,
        models=2,
        prompts=4,
        tokens=2,
        execution="{engine: ray, address: null, shard_size: 2, resources: {default: {num_gpus: 0, num_cpus: 1}}}",
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    command = [sys.executable, str(ROOT / "tests" / "sleep_cli.py"), "run", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "m0: 4 prompts (4 run, 0 cached)" in result.stderr and "m1: 4 prompts (4 run, 0 cached)" in result.stderr
    record = manifest(load_config(config))
    assert record.engine == "ray" and record.cluster.address is None
    (node,) = record.cluster.nodes
    assert node.node_id not in {n["NodeID"] for n in ray.nodes()}  # a cluster of its own
    assert {p.node_id for p in record.cluster.placements} == {node.node_id}


def test_the_default_resources_fit_a_cluster_without_gpus(tmp_path, clusters, tiny_llama_dir):
    """Issue 27 item 8: `engine: ray` with no resources on a machine without GPUs (`address: null`: a local
    cluster of this machine's CPUs) runs every model on CPUs, with the same rows as the local engine."""
    clusters.close()  # the CLI starts its own cluster; this session's one would only compete for the CPUs
    models = [model("llama", f"{{type: local, path: {tiny_llama_dir}}}")]
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    local = write_study(tmp_path / "local", models, prompts=4)
    on_ray = write_study(tmp_path / "ray", models, prompts=4, execution="{engine: ray, address: null, shard_size: 2}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("RAY_ADDRESS", None)
    for config in (local, on_ray):
        result = subprocess.run(
            [sys.executable, "-m", "reportgen", "run", str(config)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        assert "llama: 4 prompts (4 run, 0 cached)" in result.stderr, result.stderr
    assert stored(load_config(on_ray)) == stored(load_config(local)) and len(stored(load_config(local))) == 4
    record = manifest(load_config(on_ray))
    assert record.engine == "ray" and [n.gpus for n in record.cluster.nodes] == [0]
    (placement,) = record.cluster.placements
    assert placement.model_id == "llama" and placement.gpu_ids == ()


@pytest.mark.parametrize("page", ["README.md", "docs/cluster.md"])
def test_the_documented_execution_block_is_valid(page):
    """The `execution:` example users copy from "Running on a cluster" loads, and names the real extra."""
    import tomllib

    import yaml

    from reportgen.study.execution import ExecutionConfig

    text = (ROOT / page).read_text()
    section = text.split("# Running on a cluster", 1)[1]
    block = yaml.safe_load(section.split("```yaml", 1)[1].split("```", 1)[0])
    execution = ExecutionConfig.model_validate(block["execution"])
    assert execution.engine == "ray" and set(block["execution"]) == set(ExecutionConfig.model_fields)  # every key shown
    assert execution.resources_for("llama-ft").resources == {"big_disk": 1}
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "pip install 'reportgen[ray]'" in section and "ray" in extras


def test_absent_ray_is_one_clear_line(monkeypatch):
    import builtins

    from reportgen.errors import MissingExtraError
    from reportgen.run.ray_executor import import_ray

    real_import = builtins.__import__
    monkeypatch.setattr(
        builtins,
        "__import__",
        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "ray" else real_import(name, *a, **k),
    )
    with pytest.raises(MissingExtraError, match=r"pip install 'reportgen\[ray\]'"):
        import_ray()


def test_execution_key_errors_name_file_and_line(tmp_path, tiny_llama_dir):
    from reportgen.errors import ConfigError

    path = write_study(
        tmp_path,
        [model("llama", f"{{type: local, path: {tiny_llama_dir}}}")],
        execution="{engine: rayy, address: 'not an address', resources: {nope: {num_gpus: 1}}}",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = info.value.format_message()
    assert f"{path}:5: execution.engine" in text and "'rayy'" in text
    assert "execution.address" in text and "is not a Ray address" in text
    bad_size = write_study(
        tmp_path,
        [model("llama", f"{{type: local, path: {tiny_llama_dir}}}")],
        execution="{engine: ray, resources: {default: {memory: lots}}}",
    )
    with pytest.raises(ConfigError, match=r"execution.resources.default.memory: 'lots' is not a size"):
        load_config(bad_size)
    unknown = write_study(
        tmp_path,
        [model("llama", f"{{type: local, path: {tiny_llama_dir}}}")],
        execution="{engine: ray, resources: {gpt9: {num_gpus: 1}}}",
    )
    with pytest.raises(ConfigError, match=r"execution.resources: no model with id gpt9"):
        load_config(unknown)
    ok = load_config(
        write_study(
            tmp_path,
            [model("llama", f"{{type: local, path: {tiny_llama_dir}}}")],
            execution="{engine: ray, resources: {llama: {memory: 2GiB, num_cpus: 2}}}",
        )
    )
    request = ok.execution.resources_for("llama")
    assert (request.num_gpus, request.num_cpus, request.memory) == (None, 2, 2 * 2**30)  # GPUs: as the cluster has them


#: how long a model waits at the rendezvous for the others: the whole test takes about 22 s on two busy cores
RENDEZVOUS_TIMEOUT_S = 240.0


class RendezvousBackend(SleepBackend):
    """A SleepBackend whose first batch waits until all ``MODELS`` models of the study are in their first
    batch: models that run at the same time all get past it; one after another, the first one times out."""

    MODELS = 4

    def generate(self, requests):
        folder = Path(self.model.source.path) / "rendezvous"  # the study folder: the same for every actor
        arrived = folder / self.model.id
        if not arrived.exists():
            folder.mkdir(exist_ok=True)
            arrived.write_text(str(os.getpid()))
            deadline = time.monotonic() + RENDEZVOUS_TIMEOUT_S
            while len(list(folder.iterdir())) < self.MODELS:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.model.id} waited {RENDEZVOUS_TIMEOUT_S:.0f} s for the other models")
                time.sleep(0.02)
        return super().generate(requests)


def test_models_run_concurrently_on_the_cluster(tmp_path, local_ray, monkeypatch):
    """Four models on two logical GPUs (half a GPU each) run at once: each model's first batch waits at a
    rendezvous until all four are in theirs, which they pass only if their actors are alive and generating at
    the same time (the speed-up itself is measured by the benchmark: bench/ray_scheduling.py)."""
    import reportgen.util.hardware as hardware

    monkeypatch.setattr(plan, "create_backend", lambda m, config_index=None: RendezvousBackend(m))
    monkeypatch.setattr(hardware, "hardware_summary", lambda **_: {})
    study = load_config(
        sleep_study(
            tmp_path,
            models=RendezvousBackend.MODELS,
            prompts=8,
            tokens=16,  # 0.8 s per batch of 4, 1.6 s per model
            execution="{engine: ray, shard_size: 4, resources: {default: {num_gpus: 0.5, num_cpus: 0}}}",
        )
    )
    summary = run_study(study)

    assert [(m.error, m.prompts_run) for m in summary.models] == [(None, 8)] * 4
    arrivals = {p.name: p.read_text() for p in (tmp_path / "rendezvous").iterdir()}
    assert sorted(arrivals) == ["m0", "m1", "m2", "m3"]
    assert len(set(arrivals.values())) == 4 and str(os.getpid()) not in arrivals.values()  # four actors, not the driver
    with Store(store_path(study)) as store:
        batches = store.db.execute(
            "SELECT DISTINCT model_id, json_extract(extra, '$.busy_from'), json_extract(extra, '$.busy_to') FROM results"
        ).fetchall()
    assert len(batches) == 8  # 4 models x 2 batches of 4, each stored once


# ------------------------------------------------------------------------------ a head and two nodes


def hub_cache(cache: Path, repo: str, weights: Path) -> Path:
    """A Hugging Face cache holding ``weights`` as the main revision of ``repo``."""
    revision = "0" * 40
    base = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(weights, base / "snapshots" / revision)
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(revision)
    return cache


def test_models_are_placed_on_both_nodes_and_other_weights_are_refused(
    tmp_path, clusters, tiny_llama_dir, tiny_gpt2_dir, monkeypatch
):
    """a runs on node A, b and c on node B (pinned by the nodes' custom resources). Node B's cache holds other
    weights under c's repo: c is refused with the node and the model named; a and b are stored."""
    from huggingface_hub import constants
    from tiny_models import make_tiny_llama

    other_llama = make_tiny_llama(tmp_path / "other-llama", seed=1)
    cache_a = hub_cache(hub_cache(tmp_path / "cache-a", "tiny/llama", tiny_llama_dir), "tiny/gpt2", tiny_gpt2_dir)
    cache_b = hub_cache(hub_cache(tmp_path / "cache-b", "tiny/llama", other_llama), "tiny/gpt2", tiny_gpt2_dir)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_a))  # the driver sees node A's files
    clusters.multi_node(cache_a, cache_b)
    study = load_config(
        write_study(
            tmp_path,
            [
                model("a", "{type: hub, repo: tiny/llama}"),
                model("b", "{type: hub, repo: tiny/gpt2}"),
                model("c", "{type: hub, repo: tiny/llama}", extra="generation: {max_new_tokens: 5}"),  # not a's prompts
            ],
            prompts=3,
            execution="{engine: ray, address: auto, resources: {default: {num_gpus: 1}, a: {resources: {node_a: 1}}, "
            "b: {resources: {node_b: 1}}, c: {resources: {node_b: 1}}}}",
        )
    )

    summary = run_study(study, executor=RayExecutor(study.execution))

    by_id = {m.model_id: m for m in summary.models}
    assert (by_id["a"].error, by_id["a"].prompts_run) == (None, 3)
    assert (by_id["b"].error, by_id["b"].prompts_run) == (None, 3)
    node_b = next(n for n in ray.nodes() if n["Alive"] and "node_b" in n["Resources"])
    error = by_id["c"].error
    assert re.search(
        r"^node [\d.]+ \(id \w+\) has other weights for c \(fingerprint \w+ there, \w+ on the driver; differs in weights\)",
        error,
    ), error
    assert f"node {node_b['NodeManagerAddress']} (id {node_b['NodeID'][:8]})" in error  # the node that has them
    assert {r[0] for r in stored(study)} == {"a", "b"}  # nothing of c was stored

    record = manifest(study)
    nodes = {n.node_id: n for n in record.cluster.nodes}
    assert sorted(n.gpus for n in nodes.values()) == [0, 2, 2]  # the head and the two nodes, GPUs per node
    where = {n["NodeID"]: name for n in ray.nodes() for name in ("node_a", "node_b") if name in n["Resources"]}
    placed = {p.model_id: p for p in record.cluster.placements}
    assert {m: where.get(p.node_id) for m, p in placed.items()} == {"a": "node_a", "b": "node_b", "c": "node_b"}
    for p in placed.values():  # one logical GPU each, and the actor saw only that one
        assert len(p.gpu_ids) == 1 and p.cuda_visible_devices == p.gpu_ids[0]
    assert placed["b"].gpu_ids != placed["c"].gpu_ids  # b and c shared node B, on its two GPUs
