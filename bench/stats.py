"""Median, spread and ratios over the rounds of a benchmark."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence


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


def paired_ratios(numerators: Mapping[int, float | None],
                  denominators: Mapping[int, float | None]) -> dict:
    """Median, min and max of round k's numerator over round k's denominator.

    The rounds are interleaved (every configuration runs once per round), so a
    round's pair saw the same machine state; the spread of the paired ratios is
    the comparison's own noise. Rounds missing on either side, or with a
    denominator of 0, are left out (``rounds`` says how many counted).
    """
    common = sorted(set(numerators) & set(denominators))
    per_round = {rnd: ratio(numerators[rnd], denominators[rnd]) for rnd in common}
    kept = {rnd: r for rnd, r in per_round.items() if r is not None}
    s = summarize(kept.values())
    return {"median": s["median"], "min": s["min"], "max": s["max"], "rounds": s["n"],
            "per_round": {str(rnd): r for rnd, r in kept.items()}}


def ratio_spread_text(entry: Mapping | None) -> str:
    """'1.17x [1.12-1.21]' from a paired_ratios() entry."""
    if not entry or not entry.get("rounds"):
        return "-"
    if entry["rounds"] == 1:
        return f"{entry['median']:.2f}x (1 round)"
    return f"{entry['median']:.2f}x [{entry['min']:.2f}-{entry['max']:.2f}]"


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
