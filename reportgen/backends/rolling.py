"""lm-evaluation-harness's rolling windows for the log-likelihood of a text longer than the context.

The same arithmetic as ``lm_eval.utils.get_rolling_token_windows`` followed by ``make_disjoint_window``
(what ``loglikelihood_rolling`` does, with ``context_len=1``): every token of the text is predicted exactly
once; the first window predicts from the prefix token (BOS, else EOS) and each next one predicts up to
``max_len`` further tokens from the tokens just before them. The model sees at most ``max_len`` tokens
per window; the last window, which predicts fewer, is filled up with earlier tokens as context.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RollingWindow:
    """One forward: ``tokens[:-1]`` is the model's input, the last ``n_predicted`` of ``tokens[1:]`` are scored."""

    tokens: list[int]
    n_predicted: int


def rolling_windows(token_list: list[int], prefix_token: int, max_len: int) -> list[RollingWindow]:
    """The disjoint rolling windows of ``token_list`` for a model that reads ``max_len`` tokens at a time."""
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    if not token_list:
        return []
    windows = []
    first = min(max_len, len(token_list))
    windows.append(RollingWindow([prefix_token] + token_list[:first], first))
    predicted = first
    while predicted < len(token_list):
        n = min(len(token_list) - predicted, max_len)
        end = predicted + n
        context = token_list[max(end - max_len - 1, 0) : end - 1]  # the window's input, as lm-eval slices it
        context = context[: len(context) - (n - 1)]  # make_disjoint_window: drop what the continuation repeats
        windows.append(RollingWindow(context + token_list[end - n : end], n))
        predicted = end
    return windows
