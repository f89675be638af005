"""The order of runs: configurations interleaved, round after round.

for round in 1..R: for config in configs: (apply + restart) then each workload.
Interleaving spreads slow drifts of the machine (other load, cache state,
table bloat from earlier TPC-B runs) evenly over the configurations instead of
charging them all to whichever ran last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

W = TypeVar("W")


@dataclass(frozen=True)
class Step(Generic[W]):
    index: int          # 1-based position in the whole run
    round: int          # 1-based
    config: str
    workload: W
    first_of_config: bool   # the configuration is applied (and the server restarted) first


def round_orders(rounds: int, configs: Sequence[str], rotate: bool = False) -> list[list[str]]:
    """The configurations' order in each round: A B C, A B C, ... or, rotated,
    A B C, B C A, C A B (each configuration runs first, second and last once
    every len(configs) rounds, so a drift within a round is not always charged
    to the same one)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    orders = []
    for rnd in range(rounds):
        shift = rnd % len(configs) if rotate and configs else 0
        orders.append([*configs[shift:], *configs[:shift]])
    return orders


def interleave(rounds: int, configs: Sequence[str], workloads: Sequence[W],
               rotate: bool = False) -> list[Step[W]]:
    steps: list[Step[W]] = []
    for rnd, order in enumerate(round_orders(rounds, configs, rotate), start=1):
        for config in order:
            for position, workload in enumerate(workloads):
                steps.append(Step(len(steps) + 1, rnd, config, workload, position == 0))
    return steps
