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
        assert all(v is None for v in trace.x)  # a swatch only: it draws no bar
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


def test_speed_chart_draws_the_range_of_the_timed_passes():
    """Throughput and p50 latency bars carry a whisker from the slowest to the fastest timed pass, and the
    value is written past the whisker; a model measured once (no range) gets no whisker."""
    from reportgen.report.charts import speed_figure

    ids = ["a", "b", "c"]
    efficiency = pd.DataFrame(
        {
            "model_id": ids,
            "tokens_per_s": [98.0, 73.1, 50.0],
            "tokens_per_s_low": [97.7, 72.2, float("nan")],
            "tokens_per_s_high": [104.0, 74.9, float("nan")],
            "latency_p50_s": [2.88, 2.41, 0.5],
            "latency_p50_s_low": [2.80, 2.30, float("nan")],
            "latency_p50_s_high": [3.10, 2.45, float("nan")],
            "latency_p95_s": [3.5, 3.0, 0.7],
        }
    )
    fig = speed_figure(efficiency, {m: m.upper() for m in ids}, model_colours(ids))
    throughput, values, latency = fig.data[0], fig.data[1], fig.data[2]
    assert latency.name == "p50, median (bar)" and latency.showlegend is False
    assert list(throughput.error_x.array[:2]) == pytest.approx([6.0, 1.8]) and throughput.error_x.array[2] is None
    assert list(throughput.error_x.arrayminus[:2]) == pytest.approx([0.3, 0.9])
    assert list(values.x) == pytest.approx([104.0, 74.9, 50.0])  # the fastest pass: clear of the whisker
    assert [t.strip() for t in values.text] == ["98.0", "73.1", "50.0"]
    assert list(latency.error_x.array[:2]) == pytest.approx([0.22, 0.04]) and latency.error_x.array[2] is None
    assert list(latency.error_x.arrayminus[:2]) == pytest.approx([0.08, 0.11])
    assert "range over the timed passes (whisker)" in [t.name for t in fig.data]
    assert fig.layout.xaxis.range[1] > 104.0  # the axis holds the longest whisker and its label
    # throughput above latency, each across the whole width (side by side left a phone a few dozen pixels each)
    assert fig.layout.xaxis.domain == fig.layout.xaxis2.domain == (0.0, 1.0)
    assert fig.layout.yaxis.domain[0] > fig.layout.yaxis2.domain[1]
    assert throughput.xaxis == "x" and latency.xaxis == "x2"

    single = efficiency.drop(columns=[c for c in efficiency if c.endswith(("_low", "_high"))])
    fig = speed_figure(single, {m: m.upper() for m in ids}, model_colours(ids))
    assert fig.data[0].error_x.array is None and "range over the timed passes (whisker)" not in [t.name for t in fig.data]
