"""pgbench: command lines, output parsing, and the conf.d file of a configuration.

How errors are counted (the same rule for every workload):

- ``failed_transactions``: pgbench 15's "number of failed transactions"
  (serialization failures and deadlocks that were not retried).
- ``aborted_clients``: every distinct client pgbench reports as
  "client N aborted ..." on stderr. Under ``-C`` (a new connection per
  transaction, used by the connection storm) a refused connection
  ("FATAL: sorry, too many clients already", "remaining connection slots are
  reserved ...", PgBouncer's "no more connections allowed (max_client_conn)")
  aborts that client for the rest of the run: it counts once as an error and
  sends no more transactions. The run goes on with the other clients; pgbench
  then exits with status 2 and "Run was aborted; the above results are
  incomplete", and its tps covers the clients that kept working.
- ``refused_connections``: the "connection to server ... failed" lines
  (informational; one per aborted client in practice).
- A run that printed no result at all (pgbench gives up when a connection
  fails before the run under plain ``-c``, or it crashed or timed out) counts
  every client as an error, with tps 0.

``errors = failed_transactions + aborted_clients`` (or ``clients`` for a run
without result).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

_NUM = r"([0-9]+(?:\.[0-9]+)?)"

_PATTERNS = {
    "clients": re.compile(r"^number of clients: (\d+)", re.M),
    "threads": re.compile(r"^number of threads: (\d+)", re.M),
    "scale": re.compile(r"^scaling factor: (\d+)", re.M),
    "transactions": re.compile(r"^number of transactions actually processed: (\d+)", re.M),
    "failed_transactions": re.compile(r"^number of failed transactions: (\d+)", re.M),
    "latency_avg_ms": re.compile(rf"^latency average = {_NUM} ms", re.M),
    "latency_stddev_ms": re.compile(rf"^latency stddev = {_NUM} ms", re.M),
    "initial_connection_ms": re.compile(rf"^initial connection time = {_NUM} ms", re.M),
    "average_connection_ms": re.compile(rf"^average connection time = {_NUM} ms", re.M),
    "tps": re.compile(rf"^tps = {_NUM} \(", re.M),
    "duration_s": re.compile(r"^duration: (\d+) s", re.M),
}
_INTS = {"clients", "threads", "scale", "transactions", "failed_transactions", "duration_s"}
_ABORTED = re.compile(r"client (\d+) aborted")
_REFUSED = re.compile(r"connection to server .* failed")
_PROGRESS = re.compile(rf"^progress: {_NUM} s, {_NUM} tps, lat {_NUM} ms stddev {_NUM}", re.M)
_VERSION = re.compile(r"^pgbench \((.*)\)[ \t]*$", re.M)


def parse_pgbench(stdout: str, stderr: str = "", *, clients: int | None = None,
                  exit_code: int | None = 0) -> dict:
    """One pgbench run's figures from its stdout and stderr.

    ``clients`` is the number asked for on the command line: it is what a run
    without any result counts as errors.
    """
    out: dict = {key: None for key in _PATTERNS}
    for key, pattern in _PATTERNS.items():
        match = pattern.search(stdout)
        if match:
            out[key] = int(match.group(1)) if key in _INTS else float(match.group(1))
    version = _VERSION.search(stdout)
    out["server_version"] = version.group(1) if version else None
    aborted = sorted({int(m) for m in _ABORTED.findall(stderr)})
    out["aborted_clients"] = len(aborted)
    out["refused_connections"] = len(_REFUSED.findall(stderr))
    out["run_aborted"] = "Run was aborted" in stderr
    out["progress_tps"] = [float(m[1]) for m in _PROGRESS.findall(stderr)]
    out["exit_code"] = exit_code
    if clients is None:
        clients = out["clients"]
    out["clients"] = out["clients"] if out["clients"] is not None else clients
    out["completed"] = out["tps"] is not None
    if out["completed"]:
        out["errors"] = (out["failed_transactions"] or 0) + out["aborted_clients"]
    else:
        out["tps"] = 0.0
        out["transactions"] = out["transactions"] or 0
        out["errors"] = clients if clients is not None else max(1, out["aborted_clients"])
        out["error_message"] = _last_error(stderr)
    return out


def _last_error(stderr: str) -> str | None:
    lines = [ln.strip() for ln in stderr.splitlines() if "error" in ln.lower()]
    return lines[-1] if lines else (stderr.strip().splitlines() or [None])[-1]


@dataclass(frozen=True)
class Workload:
    """One pgbench workload. ``clients`` is the same for every configuration, storms
    included (``storm``: a new connection per transaction, refusals counted)."""

    name: str
    title: str
    database: str
    clients: int
    port: int = 5432
    select_only: bool = False
    connect_per_transaction: bool = False
    storm: bool = False
    duration: int = 60
    no_vacuum: bool = False
    extra: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ValueError(f"workload {self.name}: clients must be at least 1, "
                             f"got {self.clients}")


def pgbench_args(workload: Workload, *, clients: int, duration: int, seed: int = 42,
                 threads: int = 2, progress: int | None = None, user: str = "bench",
                 host: str = "127.0.0.1") -> list[str]:
    """The pgbench argument vector for one run of ``workload``."""
    args = ["pgbench", f"--random-seed={seed}", "-h", host, "-p", str(workload.port),
            "-U", user, "-c", str(clients), "-j", str(min(threads, clients)),
            "-T", str(duration)]
    if workload.select_only:
        args.append("-S")
    if workload.connect_per_transaction:
        args.append("-C")
    if workload.no_vacuum:
        args.append("-n")
    if progress:
        args.append(f"--progress={progress}")
    args.extend(workload.extra)
    args.append(workload.database)
    return args


def command_line(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


# --- conf.d -----------------------------------------------------------------

def quote_value(value: object) -> str:
    """A PostgreSQL configuration value as a single-quoted string."""
    if isinstance(value, bool):
        value = "on" if value else "off"
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"a configuration value cannot span lines: {text!r}")
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def render_conf(settings: Mapping[str, object], *, label: str = "") -> str:
    """The conf.d file of one configuration: ``name = 'value'``, one per line, sorted."""
    lines = [f"# stacktune bench: configuration {label}".rstrip(),
             "# written by bench/pgbench.py; every value quoted"]
    for name in sorted(settings):
        if not _NAME.match(name):
            raise ValueError(f"not a PostgreSQL setting name: {name!r}")
        lines.append(f"{name} = {quote_value(settings[name])}")
    return "\n".join(lines) + "\n"


def known_settings(settings: Mapping[str, str], server_names: set[str]) -> tuple[dict, list]:
    """Keep the settings the server knows; return (kept, dropped names).

    Dotted names (``pg_stat_statements.max``) are extension settings: kept when
    their extension is in the same configuration's shared_preload_libraries.
    """
    preload = {lib.strip() for lib in
               str(settings.get("shared_preload_libraries", "")).split(",") if lib.strip()}
    kept, dropped = {}, []
    for name, value in settings.items():
        known = name in server_names or ("." in name and name.split(".", 1)[0] in preload)
        if known:
            kept[name] = value
        else:
            dropped.append(name)
    return kept, sorted(dropped)
