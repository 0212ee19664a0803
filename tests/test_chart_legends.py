"""Chart legends match their traces: a legend entry that stands for a kind of bar (solid peak memory,
hatched weights) has one colour, not the first model's (plotly drew model 1's colour for an array)."""

from __future__ import annotations

import pandas as pd

from reportgen.report.charts import PALETTE, memory_figure, model_colours


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
