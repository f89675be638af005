"""Median, spread and ratios over the rounds of a benchmark."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence


def summarize(values: Iterable[float | None]) -> dict:
    """n, median, min, max, q1, q3 and IQR of the values (None ignored).

    Quartiles use the inclusive method (they stay inside [min, max] even with
    two or three rounds); with one value every figure is that value.
    """
    data = sorted(float(v) for v in values if v is not None)
    if not data:
        return {"n": 0, "median": None, "min": None, "max": None,
                "q1": None, "q3": None, "iqr": None}
    if len(data) == 1:
        q1 = q3 = data[0]
    else:
        q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
    return {"n": len(data), "median": statistics.median(data), "min": data[0],
            "max": data[-1], "q1": q1, "q3": q3, "iqr": q3 - q1}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def spread_text(summary: dict, digits: int = 0) -> str:
    """'min-max' of a summary, for tables."""
    if summary.get("n", 0) == 0:
        return "-"
    if summary["n"] == 1:
        return "(1 round)"
    return f"{summary['min']:,.{digits}f}-{summary['max']:,.{digits}f}"


def ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def total(values: Sequence[float | int | None]) -> int:
    return int(sum(v for v in values if v is not None))
