"""Each local model runs in a worker process of its own (reportgen.run.worker), with real tiny models and a
real store: the same weights measure the same load time and memory in any order; a worker that dies or
raises fails only its model; the driver alone writes the store, batch by batch; Ctrl-C stops the worker."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


import reportgen.run.plan as plan
from reportgen.run.runner import run_study
from reportgen.store import Store, store_path
from reportgen.study.config import load_config

ROOT = Path(__file__).parent.parent


def write_study(folder: Path, models: list[tuple[str, str]], *, prompts: int = 6, batch_size: int = 2, tokens: int = 8) -> Path:
    """``models``: (id, folder) pairs. Each entry gets a stop string of its own that never occurs: the same
    weights under several ids then share no stored answers (the cache key holds the stop strings), and
    every entry loads and generates alike."""
    (folder / "prompts.yaml").write_text(
        "prompts:\n"
        + "".join(f"  - {{id: p{i:03d}, prompt: 'Say {'word ' * (i % 4 + 1)}number {i}.'}}\n" for i in range(prompts))
    )
    entries = "".join(
        f"  - {{id: {model_id}, name: {model_id}, source: {{type: local, path: {path}}}, batch_size: {batch_size}, "
        f"generation: {{stop: ['<never-{model_id}>']}}}}\n"
        for model_id, path in models
    )
    (folder / "study.yaml").write_text(
        f"title: Isolation\nprompts: prompts.yaml\ngeneration: {{max_new_tokens: {tokens}}}\n"
        f"measure: {{warmup: 0}}\noutput: {{dir: {folder / 'report'}}}\nmodels:\n{entries}"
    )
    return folder / "study.yaml"


def model_runs(study) -> dict[str, sqlite3.Row]:
    with Store(store_path(study)) as store:
        return {r["model_id"]: r for r in store.db.execute("SELECT * FROM model_runs ORDER BY started_at")}


def stored(study) -> dict[str, int]:
    with Store(store_path(study)) as store:
        return dict(store.db.execute("SELECT model_id, COUNT(*) FROM results GROUP BY model_id").fetchall())


def cli(config: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "reportgen", *args, "run", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def group_alive(group: int) -> list[int]:
    """The live (not zombie) processes of a process group: a worker orphaned and killed may linger as a zombie
    where no init reaps it, as in some containers."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def test_the_same_model_three_times_measures_the_same_load_time_and_memory(tmp_path, tiny_llama_dir):
    """An A/A test, run by the CLI in a fresh process as a user would. In one process the first of the three
    paid the one-time costs (library initialisation, allocator growth, thread pools): it loaded several
    times slower and added several times the memory of the same weights loaded after it."""
    config = write_study(
        tmp_path, [("first", str(tiny_llama_dir)), ("second", str(tiny_llama_dir)), ("third", str(tiny_llama_dir))]
    )
    process = cli(config, "-q")
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    runs = model_runs(load_config(config))
    assert list(runs) == ["first", "second", "third"]
    load = {m: r["load_time_s"] for m, r in runs.items()}
    peak = {m: r["peak_memory_bytes"] for m, r in runs.items()}
    assert all(v and v > 0 for v in [*load.values(), *peak.values()]), (load, peak)
    assert max(peak.values()) <= 1.25 * min(peak.values()), peak
    assert load["first"] <= 3 * (load["second"] + load["third"]) / 2, load  # in one process: 20-40 times


def dying_on(model_id: str, *, batch: int, how: str):
    """plan.create_backend, with ``model_id``'s generate ending the worker at its ``batch``-th answer batch: killed
    (SIGKILL, as the OOM killer does) or raising an exception nobody expects."""
    real = plan.create_backend

    def create(model, config_index=None):
        backend = real(model, config_index)
        if model.id != model_id:
            return backend
        generate, calls = backend.generate, []

        def failing(requests):
            if any(r.settings.ignore_eos for r in requests):  # the warm-up and the fixed workload, before the answers
                return generate(requests)
            calls.append(len(requests))  # answer batches, counted in the worker, which runs every batch of this model
            if len(calls) == batch:
                logging.getLogger("reportgen.test").warning("about to fail in process %d", os.getpid())
                if how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise ValueError("tensor of the wrong shape")
            return generate(requests)

        backend.generate = failing
        return backend

    return create


def test_a_worker_that_dies_fails_its_model_only(tmp_path, tiny_llama_dir, tiny_gpt2_dir, monkeypatch, caplog):
    monkeypatch.setattr(plan, "create_backend", dying_on("llama", batch=2, how="kill"))
    study = load_config(write_study(tmp_path, [("llama", str(tiny_llama_dir)), ("gpt2", str(tiny_gpt2_dir))]))
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        summary = run_study(study)
    by_id = {m.model_id: m for m in summary.models}
    assert by_id["llama"].error == "worker process for model llama died (signal 9)"
    assert by_id["gpt2"].error is None and by_id["gpt2"].prompts_run == 6
    assert stored(study) == {"llama": 2, "gpt2": 6}  # llama's first batch was committed before it died
    runs = model_runs(study)
    assert runs["llama"]["finished_at"] is None and runs["gpt2"]["finished_at"] is not None
    warned = [r for r in caplog.records if r.name == "reportgen.test"]  # logged in the worker, handled here
    assert len(warned) == 1 and warned[0].process != os.getpid()
    assert warned[0].getMessage() == f"about to fail in process {warned[0].process}"

    monkeypatch.undo()
    again = run_study(load_config(tmp_path / "study.yaml"))  # resumes the dead model's remaining batches only
    assert [(m.model_id, m.prompts_run, m.error) for m in again.models] == [("llama", 4, None), ("gpt2", 0, None)]
    assert stored(study) == {"llama": 6, "gpt2": 6}


def test_an_unexpected_exception_in_a_worker_is_its_models_error(tmp_path, tiny_llama_dir, tiny_gpt2_dir, monkeypatch):
    monkeypatch.setattr(plan, "create_backend", dying_on("gpt2", batch=1, how="raise"))
    study = load_config(write_study(tmp_path, [("gpt2", str(tiny_gpt2_dir)), ("llama", str(tiny_llama_dir))]))
    summary = run_study(study)
    assert [(m.model_id, m.error) for m in summary.models] == [("gpt2", "ValueError: tensor of the wrong shape"), ("llama", None)]
    assert stored(study) == {"llama": 6}


def test_ctrl_c_stops_the_worker_and_keeps_the_committed_batches(tmp_path, tiny_llama_dir):
    config = write_study(tmp_path, [("llama", str(tiny_llama_dir))], prompts=60, batch_size=1, tokens=24)
    study = load_config(config)
    process = cli(config)
    database, count, deadline = store_path(study), 0, time.time() + 120
    try:
        while time.time() < deadline and count < 3:
            if database.exists():
                try:
                    with sqlite3.connect(database, timeout=1) as db:
                        count = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C does: the driver and its worker
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, err
    assert "every batch committed so far is kept in the store" in err and "Traceback" not in err, err
    assert group_alive(process.pid) == []  # the worker is gone too: nobody is left in the process group
    done = stored(study)["llama"]
    assert 3 <= done < 60
    assert model_runs(study)["llama"]["load_time_s"] is not None
    summary = run_study(study)
    assert summary.models[0].prompts_run == 60 - done
    assert stored(study) == {"llama": 60}


def test_a_worker_does_not_outlive_its_driver(tmp_path, tiny_llama_dir):
    """kill -9 of the driver alone: its worker dies with it (it would hold the store's lock meanwhile)."""
    config = write_study(tmp_path, [("llama", str(tiny_llama_dir))], prompts=60, batch_size=1, tokens=24)
    study = load_config(config)
    process = cli(config, "-q")
    database, count, deadline = store_path(study), 0, time.time() + 120
    try:
        while time.time() < deadline and count < 2:
            if database.exists():
                try:
                    with sqlite3.connect(database, timeout=1) as db:
                        count = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        deadline = time.time() + 30
        while group_alive(process.pid) and time.time() < deadline:
            time.sleep(0.05)
        assert group_alive(process.pid) == [], "the worker outlived its driver"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert stored(study)["llama"] >= 2


def test_with_cuda_initialised_in_the_driver_models_run_in_it_and_say_so(tmp_path, tiny_gpt2_dir, monkeypatch, caplog):
    """A forked worker cannot use a CUDA that its driver initialised: then the model runs in the driver."""
    from reportgen.run import worker

    monkeypatch.setattr(worker, "fork_is_safe", lambda: False)
    pids: list[int] = []
    real = plan.create_backend

    def create(model, config_index=None):
        backend = real(model, config_index)
        generate = backend.generate
        backend.generate = lambda requests: pids.append(os.getpid()) or generate(requests)
        return backend

    monkeypatch.setattr(plan, "create_backend", create)
    study = load_config(write_study(tmp_path, [("gpt2", str(tiny_gpt2_dir))]))
    with caplog.at_level(logging.WARNING, logger="reportgen"):
        summary = run_study(study)
    assert summary.models[0].prompts_run == 6 and set(pids) == {os.getpid()}
    assert any("not in a worker of its own" in r.getMessage() for r in caplog.records)


def test_a_driver_that_used_torchs_thread_pool_can_still_fork_workers(tmp_path, tiny_llama_dir):
    """GNU OpenMP keeps its thread pool in the thread that made it; a forked copy of that thread would wait
    forever for the pool's threads (they are not copied). The worker runs its model on a thread of its own.
    In a script (the test process may or may not have used the pool yet); the timeout only stops a hang."""
    config = write_study(tmp_path, [("llama", str(tiny_llama_dir))])
    script = (
        "import torch\n"
        "torch.set_num_threads(2)\n"
        "x, w = torch.randn(32, 512), torch.randn(512, 512)\n"
        "for _ in range(50): torch.nn.functional.linear(x, w)\n"  # the driver's OpenMP pool is up
        "from reportgen.study.config import load_config\n"
        "from reportgen.run.runner import run_study\n"
        f"summary = run_study(load_config({str(config)!r}))\n"
        "print(summary.models[0].prompts_run, summary.models[0].error)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert out.split() == ["6", "None"], err
