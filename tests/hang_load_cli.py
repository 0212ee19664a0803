"""The ``reportgen`` command line with every model served by a test backend whose load hangs while the
environment variable ``REPORTGEN_TEST_HANG_LOAD`` is set: a real ``reportgen run`` that a test can
interrupt while a model is loading (the backend says so on stderr first), then resume without it.

    python tests/hang_load_cli.py run STUDY.yaml        # like `reportgen run STUDY.yaml`
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reportgen.backends.base import Backend  # noqa: E402
from reportgen.records import GenerationResult, LoadInfo  # noqa: E402

HANG = "REPORTGEN_TEST_HANG_LOAD"


class HangingLoad(Backend):
    """Answers each prompt with its id; ``load`` never returns while ``REPORTGEN_TEST_HANG_LOAD`` is set."""

    name = "hanging-load"
    local = False  # runs in the driver: Ctrl-C reaches the load itself

    def fingerprint_parts(self):
        return {"model": self.model.id}

    def load(self) -> LoadInfo:
        if os.environ.get(HANG):
            print(f"{self.model.id}: loading (hangs)", file=sys.stderr, flush=True)
            while True:
                time.sleep(0.1)
        return LoadInfo(load_time_s=0.0, precision="none", device="cpu")

    def generate(self, requests):
        return [GenerationResult(r.prompt_id, f"answer to {r.prompt_id}", 2, 3, "eos", 0.01) for r in requests]


def main() -> None:
    import reportgen.run.plan as plan
    import reportgen.util.hardware as hardware

    plan.create_backend = lambda model, config_index=None: HangingLoad(model)
    hardware.hardware_summary = lambda **_: {"skipped": "tests/hang_load_cli.py"}  # seconds that test nothing here
    from reportgen.cli import main as reportgen

    reportgen(prog_name="reportgen")


if __name__ == "__main__":
    main()
