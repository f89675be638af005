"""scripts/bench --sweep: the best PostgreSQL settings this hardware allows, and the plan's
distance from them.

For each swept workload, on the bench container:

1. **search**: an optuna study (TPE, seeded) over the settings that matter for throughput
   (``space()``). It starts from three known points, the swept settings' values under
   PostgreSQL's defaults, PGTune and stacktune, then samples. A trial applies stacktune's
   whole plan with the trial's values on top, restarts PostgreSQL, warms up and runs once.
2. **confirm**: the best few distinct points found, stacktune's plan, PostgreSQL's defaults
   and PGTune, run again round after round, interleaved and rotated, as the main benchmark
   runs its configurations. The best point is the one with the highest median here: one
   search run favours lucky noise, so the repeated runs decide.

``stacktune_over_best`` is then the median of the paired per-round ratios (round k's
stacktune over round k's best) with their min and max, like every other ratio of the
benchmark. A value of 1.00 means the search found nothing better than the plan.

The arithmetic (space, conversions, picking points, ratios) is pure and unit-tested; the
``measure`` callable that applies a point and runs pgbench is bench/run.py's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.schedule import interleave
from bench.stats import paired_ratios, summarize
from stacktune.units import MiB, UnitError, parse_pg_duration, parse_pg_memory

# PostgreSQL 15's own values of the swept settings (what an empty conf.d file runs).
POSTGRESQL_DEFAULTS = {"shared_buffers": "128MB", "work_mem": "4MB", "max_wal_size": "1GB",
                       "checkpoint_timeout": "5min", "random_page_cost": "4",
                       "effective_io_concurrency": "1", "wal_compression": "off"}
START_POINTS = ("default", "pgtune", "stacktune")


@dataclass(frozen=True)
class Dimension:
    """One swept setting: a range (in ``unit``) or a list of choices."""

    name: str
    low: float = 0
    high: float = 0
    unit: str = ""          # "MB", "min" or "" (a plain number)
    log: bool = False
    integer: bool = True
    choices: tuple[str, ...] = ()
    why: str = ""

    def setting(self, value: float | str) -> str:
        """The PostgreSQL value of a point's coordinate: 913 -> '913MB'."""
        if self.choices:
            return str(value)
        number = float(value)
        if self.integer:
            return f"{round(number)}{self.unit}"
        return f"{round(number, 2):g}{self.unit}"

    def coordinate(self, setting: str) -> float | str:
        """A PostgreSQL value in this dimension's unit, clamped into its range."""
        if self.choices:
            text = str(setting).strip().lower()
            # PostgreSQL 15 reads wal_compression = on as pglz.
            text = {"on": "pglz", "true": "pglz", "false": "off"}.get(text, text)
            if text not in self.choices:
                raise UnitError(f"{self.name} = {setting!r} is not one of {self.choices}")
            return text
        if self.unit == "MB":
            number = parse_pg_memory(str(setting)) / MiB
        elif self.unit == "min":
            number = parse_pg_duration(str(setting), default_unit="s") / 60
        else:
            number = float(setting)
        number = min(max(number, self.low), self.high)
        return round(number) if self.integer else round(number, 2)


def space(memory_mb: int) -> list[Dimension]:
    """The settings the sweep searches, for a server with ``memory_mb`` of memory.

    Ranges are wide enough to hold every configuration's value and what a DBA would try,
    bounded so that no point can run the container out of memory (shared_buffers up to
    60 % of it; work_mem x 16 clients stays under a quarter of it at the top).
    """
    if memory_mb < 512:
        raise ValueError(f"the sweep needs at least 512 MB of memory, got {memory_mb}")
    work_mem_top = max(8, min(256, memory_mb // 64))
    return [
        Dimension("shared_buffers", 32, int(memory_mb * 0.6), "MB", log=True,
                  why="PostgreSQL's own cache against the page cache"),
        Dimension("work_mem", 1, work_mem_top, "MB", log=True,
                  why="sorts and hashes in memory instead of temporary files"),
        Dimension("max_wal_size", 512, 16384, "MB", log=True,
                  why="how often WAL volume forces a checkpoint"),
        Dimension("checkpoint_timeout", 5, 30, "min",
                  why="how often time forces a checkpoint (full-page writes after each)"),
        Dimension("random_page_cost", 1.0, 4.0, integer=False,
                  why="the planner's index-versus-scan choice"),
        Dimension("effective_io_concurrency", 1, 256, log=True,
                  why="prefetch depth of bitmap heap scans"),
        Dimension("wal_compression", choices=("off", "pglz", "lz4", "zstd"),
                  why="CPU for full-page images against WAL volume"),
    ]


def point_from_settings(dims: Sequence[Dimension], settings: Mapping[str, object],
                        fallback: Mapping[str, str] = POSTGRESQL_DEFAULTS) -> dict:
    """A configuration's coordinates: its value of each swept setting, or the fallback's."""
    return {d.name: d.coordinate(str(settings.get(d.name, fallback[d.name]))) for d in dims}


def point_settings(dims: Sequence[Dimension], point: Mapping[str, float | str]) -> dict:
    """The PostgreSQL settings of a point: {'shared_buffers': '913MB', ...}."""
    return {d.name: d.setting(point[d.name]) for d in dims}


def trial_settings(base: Mapping[str, str], dims: Sequence[Dimension],
                   point: Mapping[str, float | str]) -> dict:
    """stacktune's whole plan with the point's values of the swept settings on top."""
    settings = dict(base)
    settings.update(point_settings(dims, point))
    return settings


def distributions(dims: Sequence[Dimension]) -> dict:
    import optuna  # scripts/bench --sweep only: the rest of the bench runs without it

    out = {}
    for d in dims:
        if d.choices:
            out[d.name] = optuna.distributions.CategoricalDistribution(list(d.choices))
        elif d.integer:
            out[d.name] = optuna.distributions.IntDistribution(int(d.low), int(d.high),
                                                               log=d.log)
        else:
            out[d.name] = optuna.distributions.FloatDistribution(d.low, d.high, log=d.log)
    return out


# (settings of the trial) -> one sample: "completed", and what ``score`` reads ("tps").
Measure = Callable[[Mapping[str, str]], Mapping]


def tps_score(sample: Mapping) -> float:
    return float(sample.get("tps") or 0)


def search(dims: Sequence[Dimension], starts: Mapping[str, Mapping[str, float | str]],
           measure: Measure, base: Mapping[str, str], *, trials: int, seed: int = 42,
           say: Callable[[str], None] = lambda _: None,
           score: Callable[[Mapping], float] = tps_score, unit: str = "tps") -> list[dict]:
    """Run the start points, then ``trials`` sampled points; one record per run, with the
    point's ``score`` (pgbench: tps) and the sample.

    A point that fails (PostgreSQL refuses it, or there is no result) is told to optuna as
    failed and recorded with score 0 and the reason; the search goes on.
    """
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, max(1, trials)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for name, point in starts.items():
        study.enqueue_trial(dict(point), user_attrs={"start": name})
    space_dists = distributions(dims)
    records: list[dict] = []
    for number in range(len(starts) + trials):
        trial = study.ask(space_dists)
        point = {d.name: trial.params[d.name] for d in dims}
        start = trial.user_attrs.get("start")
        sample = dict(measure(trial_settings(base, dims, point)))
        value = score(sample)
        ok = bool(sample.get("completed")) and value > 0
        if ok:
            study.tell(trial, value)
        else:
            study.tell(trial, state=TrialState.FAIL)
        records.append({"number": number, "start": start, "point": point,
                        "settings": point_settings(dims, point), "score": value if ok else 0.0,
                        "completed": ok, "error": None if ok else
                        sample.get("error_message") or "no result", "sample": sample})
        label = f"start point {start}" if start else f"trial {number - len(starts) + 1}/{trials}"
        say(f"    {label}: {value:,.1f} {unit}"
            + ("" if ok else f" (failed: {records[-1]['error']})")
            + f"  {_short(records[-1]['settings'])}")
    return records


def _short(settings: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in settings.items())


def top_points(records: Sequence[Mapping], count: int,
               exclude: Sequence[Mapping] = ()) -> list[dict]:
    """The ``count`` best completed records with distinct settings, none equal to an
    excluded point's settings (stacktune's own is confirmed anyway)."""
    seen = [dict(e) for e in exclude]
    out: list[dict] = []
    for record in sorted((r for r in records if r["completed"]), key=lambda r: -r["score"]):
        if len(out) == count:
            break
        if record["settings"] in seen:
            continue
        seen.append(record["settings"])
        out.append(dict(record))
    return out


def confirm(configs: Mapping[str, Mapping[str, str]], measure: Measure, *, rounds: int,
            say: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Each configuration once per round, rounds interleaved and rotated; the samples."""
    samples = []
    steps = interleave(rounds, list(configs), ["run"], rotate=True)
    for step in steps:
        sample = dict(measure(configs[step.config]))
        sample.update(round=step.round, config=step.config)
        samples.append(sample)
        say(f"    confirm round {step.round} {step.config}: {float(sample.get('tps') or 0):,.1f}"
            " tps")
    return samples


def verdict(samples: Sequence[Mapping], names: Sequence[str], value: str = "tps") -> dict:
    """The best configuration (highest median ``value`` over the rounds; a run without a
    result counts 0) and stacktune's paired ratios over it and over each other one."""
    def by_round(name: str) -> dict[int, float | None]:
        return {s["round"]: (float(s[value]) if s.get("completed") else 0.0)
                for s in samples if s["config"] == name}

    medians = {name: summarize(by_round(name).values()) for name in names}
    ranked = [n for n in names if medians[n]["median"] is not None]
    if "stacktune" not in ranked:
        raise ValueError("the confirm stage has no stacktune sample")
    best = max(ranked, key=lambda n: medians[n]["median"])
    mine = by_round("stacktune")
    return {"best": best, "medians": medians,
            "stacktune_over_best": paired_ratios(mine, by_round(best)),
            "stacktune_over": {n: paired_ratios(mine, by_round(n))
                               for n in names if n != "stacktune"}}


def differences(dims: Sequence[Dimension], best: Mapping[str, str],
                mine: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The swept settings where the best point differs from stacktune's: name -> (best, mine)."""
    return {d.name: (best[d.name], mine[d.name]) for d in dims
            if d.name in best and d.name in mine and best[d.name] != mine[d.name]}


def estimate_seconds(workloads: int, trials: int, top: int, rounds: int, trial_s: int,
                     confirm_s: int, warmup: int, restart_s: int = 6) -> int:
    """About how long the sweep takes: every run pays a restart and a warm-up."""
    per_workload = (len(START_POINTS) + trials) * (trial_s + warmup + restart_s) + \
        (len(START_POINTS) + top) * rounds * (confirm_s + warmup + restart_s)
    return math.ceil(workloads * per_workload)
