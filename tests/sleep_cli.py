"""The ``reportgen`` command line with every model served by the sleeping test backend of
``bench/ray_scheduling.py``: a real ``reportgen run`` (its own process, its own Ray driver) whose models
take a known time per batch, so that a test can kill it mid-run.

    python tests/sleep_cli.py run STUDY.yaml        # like `reportgen run STUDY.yaml`
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import ray_scheduling  # noqa: E402


def main() -> None:
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(ray_scheduling)  # the cluster's workers need not import it
    ray_scheduling.use_sleep_backend()
    ray_scheduling.without_hardware_probe()
    from reportgen.cli import main as reportgen

    reportgen(prog_name="reportgen")


if __name__ == "__main__":
    main()
