"""Chart layouts adapt to 2–12 models and legends match their traces: a legend entry that stands for a kind of bar (solid peak memory,
hatched weights) has one colour, not the first model's (plotly drew model 1's colour for an array)."""

from __future__ import annotations

import pandas as pd
import pytest

from reportgen.report.charts import HORIZONTAL_FROM, PALETTE, ci_bar_height, memory_figure, model_colours, quality_figure


def test_memory_legend_swatches_are_one_neutral_colour():
    ids = ["a", "b", "c"]
    efficiency = pd.DataFrame(
        {"model_id": ids, "peak_memory_bytes": [3 * 2**30, 2 * 2**30, 2**29], "weight_bytes": [2**30, 2**30, 2**28]}
    )
    fig = memory_figure(efficiency, {m: m.upper() for m in ids}, model_colours(ids))
    shown = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in shown] == ["peak memory while generating (solid)", "weights (hatched)"]
    for trace in shown:
        assert isinstance(trace.marker.color, str) and trace.marker.color not in PALETTE
        assert all(v is None for v in trace.y)  # a swatch only: it draws no bar
    bars = [t for t in fig.data if t.showlegend is False]
    assert [list(t.marker.color) for t in bars] == [[model_colours(ids)[m] for m in ids]] * 2  # bars keep the models' colours
    assert shown[1].marker.pattern.shape == "/" and bars[1].marker.pattern.shape == "/"
    assert {t.offsetgroup for t in shown} == {t.offsetgroup for t in bars}  # swatches take no bar slot of their own


def _summary(n: int) -> tuple[pd.DataFrame, dict[str, str]]:
    ids = [f"model-{i}" for i in range(n)]
    rows = [
        {"model_id": m, "metric": "exact_match", "mean": 0.1 + 0.05 * i, "ci_low": 0.05 * i, "ci_high": 0.2 + 0.05 * i, "n": 20}
        for i, m in enumerate(ids)
    ]
    return pd.DataFrame(rows), {m: f"A long fine-tune name number {i} (transformers, float32)" for i, m in enumerate(ids)}


@pytest.mark.parametrize("n", [2, 5, 6, 12])
def test_bars_turn_horizontal_for_many_models(n):
    summary, names = _summary(n)
    fig = quality_figure(summary, "exact_match", names, model_colours(list(names)))
    bars, labels = fig.data
    horizontal = n >= HORIZONTAL_FROM
    assert bars.orientation == ("h" if horizontal else "v")
    assert len(bars.y if horizontal else bars.x) == n
    assert labels.textposition == ("middle right" if horizontal else "top center")
    # the value is written at the interval's end, never on the bar's cap at the mean
    assert list(labels.x if horizontal else labels.y) == list(summary["ci_high"])
    if horizontal:
        assert fig.layout.yaxis.autorange == "reversed"  # the first model on top, as in the tables
        assert ci_bar_height(n) >= 150 + 46 * n
        assert all(label.count("<br>") <= 1 for label in bars.y)  # names read across: at most two lines
    else:
        assert ci_bar_height(n) == 380


def test_twelve_models_twelve_colours():
    ids = [f"m{i}" for i in range(12)]
    assert len(set(model_colours(ids).values())) == 12
