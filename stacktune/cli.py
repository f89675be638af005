"""stacktune's command line: inspect this host, plan a stack, render its config files.

Errors (bad flags, impossible plans) exit with status 2 and one clear message on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from stacktune import guard
from stacktune import inspect as host_inspect
from stacktune.guard import MAX_APP_HOSTS, MAX_CONNECTIONS, MAX_CPUS, MAX_MEMORY_BYTES
from stacktune.model import (
    SERVICES,
    SUPPORTED_PG_VERSIONS,
    Host,
    HostProfile,
    PlanError,
    StackInputs,
    Storage,
    Workload,
)
from stacktune.pgtune import PgTuneInputs, pgtune_settings, pgtune_warnings
from stacktune.plan import Plan, plan_stack
from stacktune.render import render_host
from stacktune.units import UnitError, human_bytes, parse_human_size

EXIT_USAGE = 2


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments"):
            message += f"; see {self.prog} --help for the flags"
        raise CliError(message)


def _typed(check):  # type: ignore[no-untyped-def]
    """An argparse type from a guard check; its PlanError becomes argparse's message."""
    def convert(text: str) -> object:
        try:
            return check(text)
        except guard.PlanError as error:
            raise argparse.ArgumentTypeError(str(error).split(": ", 1)[-1]) from None
    return convert


_cpus = _typed(lambda text: guard.ascii_decimal("--cpus", text, 0, MAX_CPUS,
                                                exclusive_minimum=True))
_pg_version = _typed(lambda text: guard.ascii_integer("--pg-version", text, 0, 99))
_app_hosts = _typed(lambda text: guard.ascii_integer("--app-hosts", text, 0, MAX_APP_HOSTS))
_connections = _typed(lambda text: guard.ascii_integer("--connections", text, 1,
                                                       MAX_CONNECTIONS))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stacktune", description=(
        "Plan a tuned Django + PostgreSQL + PgBouncer + Redis + Gunicorn stack from the "
        "host's real hardware."))
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    inspect_cmd = commands.add_parser("inspect", help="show this machine's usable memory, CPUs, "
                                      "storage (after cgroup limits)")
    inspect_cmd.add_argument("--format", choices=("table", "json"), default="table")
    inspect_cmd.add_argument("--data-path", help="existing path whose storage device to inspect "
                             "(default: the PostgreSQL data directory, else /)")
    inspect_cmd.add_argument("--storage", choices=[s.value for s in Storage],
                             help="override the detected storage kind")

    plan_cmd = commands.add_parser("plan", help="print the plan (every setting with its reason)")
    _add_plan_flags(plan_cmd)
    plan_cmd.add_argument("--format", choices=("table", "json"), default="table")
    plan_cmd.add_argument("--baseline", choices=("pgtune",),
                          help="print PGTune's values for the same inputs instead "
                          "(postgresql only)")

    render_cmd = commands.add_parser("render", help="write the config files of the plan")
    render_cmd.add_argument("--out", required=True, help="directory to write into")
    _add_plan_flags(render_cmd)

    report_cmd = commands.add_parser("report", help="find what is slow: read the database's "
                                     "statistics and say what to do (read-only)")
    source = report_cmd.add_mutually_exclusive_group(required=True)
    source.add_argument("--dsn", help="PostgreSQL connection string, e.g. 'host=db dbname=app "
                        "user=stacktune_monitor' or postgresql://...")
    source.add_argument("--snapshot", metavar="FILE",
                        help="render a snapshot saved with --save-snapshot instead of connecting")
    report_cmd.add_argument("--pgbouncer", metavar="DSN",
                            help="PgBouncer admin console, e.g. 'host=app port=6432 "
                            "dbname=pgbouncer user=stats'")
    report_cmd.add_argument("--redis", metavar="URL",
                            help="Redis, e.g. redis://:password@cache:6379")
    report_cmd.add_argument("--format", choices=("md", "json", "html"), default="md")
    report_cmd.add_argument("--out", metavar="FILE",
                            help="write the report there (default: stdout)")
    report_cmd.add_argument("--since", metavar="FILE",
                            help="an earlier saved snapshot: report the counters' increases")
    report_cmd.add_argument("--plan", metavar="FILE",
                            help="the plan as JSON (stacktune plan --format json) to compare with")
    report_cmd.add_argument("--save-snapshot", metavar="FILE",
                            help="also save the snapshot (JSON) for a later --since")
    report_cmd.add_argument("--overrides-out", metavar="FILE",
                            help="write the setting proposals as a stacktune_overrides vars file")
    report_cmd.add_argument("--apply", action="store_true",
                            help="create the missing indexes the report finds (CREATE INDEX "
                            "CONCURRENTLY, one at a time; needs --dsn and a role that may "
                            "create indexes on those tables). Off by default: the report "
                            "changes nothing")
    report_cmd.add_argument("--top", type=_top, default=10,
                            help="statements per top list (default 10)")
    return parser


_top = _typed(lambda text: guard.ascii_integer("--top", text, 1, 100))


def _add_plan_flags(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--memory", help="usable memory, e.g. 4GiB (default: inspect this host)")
    cmd.add_argument("--cpus", type=_cpus, help="usable CPUs, e.g. 2 or 1.5 (default: inspect)")
    cmd.add_argument("--storage", choices=[s.value for s in Storage],
                     help="storage kind (default: inspect)")
    cmd.add_argument("--pg-version", type=_pg_version, default=15,
                     help=f"PostgreSQL major version ({SUPPORTED_PG_VERSIONS[0]}-"
                     f"{SUPPORTED_PG_VERSIONS[-1]}, default 15)")
    cmd.add_argument("--workload", choices=[w.value for w in Workload], default="web")
    cmd.add_argument("--services", default=",".join(SERVICES),
                     help="services on this host, comma-separated (default: all five)")
    cmd.add_argument("--app-hosts", type=_app_hosts,
                     help="app hosts running this Gunicorn plan (default 1 when gunicorn is "
                     "in --services, else none)")
    cmd.add_argument("--connections", type=_connections,
                     help="expected client connections to the database, when known")
    cmd.add_argument("--worker-rss", default="160MiB",
                     help="estimated resident memory of one Gunicorn worker (default 160MiB)")
    cmd.add_argument("--django-version", default="5.2", help="Django version (default 5.2)")
    cmd.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="SERVICE.SETTING=VALUE", help="override one setting (repeatable)")
    cmd.add_argument("--host-name", default=None, help="name of this host in the plan")


def _services(text: str) -> frozenset[str]:
    services = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = services - set(SERVICES)
    if unknown or not services:
        raise CliError(f"--services {text!r}: use a comma-separated list of "
                       f"{', '.join(SERVICES)}")
    return services


def _overrides(items: Sequence[str]) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        service, dot, name = key.strip().partition(".")
        if not sep or not service or not dot or not name:
            raise CliError(f"--set {item!r}: write it as SERVICE.SETTING=VALUE, "
                           "e.g. --set postgresql.work_mem=64MB")
        if name in result.get(service, {}):
            # The last one winning silently hides a typo in a long command line.
            raise CliError(f"--set {service}.{name} is given twice "
                           f"({result[service][name]!r} and {value.strip()!r}); give it once")
        result.setdefault(service, {})[name] = value.strip()
    return result


def _size_flag(flag: str, text: str, maximum: int = MAX_MEMORY_BYTES) -> int:
    """A size flag's bytes; a bad value is an error that names the flag."""
    try:
        size = parse_human_size(text)
    except UnitError as error:
        raise CliError(f"{flag}: {error}") from None
    if size > maximum:
        raise CliError(f"{flag} {text!r}: expected at most {human_bytes(maximum)}")
    return size


def profile_from_args(args: argparse.Namespace) -> HostProfile:
    """This host's profile, with any hardware given on the command line taking precedence."""
    if args.memory is not None and not args.memory.strip():
        raise CliError("--memory is empty; give a size like 4GiB, or leave the flag out to "
                       "inspect this host")
    needs_inspect = args.memory is None or args.cpus is None or args.storage is None
    detected = host_inspect.inspect_host() if needs_inspect else {}
    memory = (_size_flag("--memory", args.memory) if args.memory is not None
              else int(detected["memory_bytes"]))
    cpus = args.cpus if args.cpus is not None else float(detected["cpus"])
    storage = Storage(args.storage or detected["storage"])
    return HostProfile(
        memory_bytes=memory, cpus=cpus, storage=storage,
        physical_memory_bytes=detected.get("physical_memory_bytes"),
        online_cpus=detected.get("online_cpus"),
        memory_source="--memory" if args.memory is not None else str(detected["memory_source"]),
        cpu_source="--cpus" if args.cpus is not None else str(detected["cpu_source"]),
        storage_source="--storage" if args.storage else str(detected["storage_source"]),
        os_id=str(detected.get("os_id", "")), os_version=str(detected.get("os_version", "")),
        in_container=bool(detected.get("in_container", False)) if needs_inspect else False,
    )


def inputs_from_args(args: argparse.Namespace) -> tuple[StackInputs, str]:
    profile = profile_from_args(args)
    services = _services(args.services)
    if args.host_name is not None:
        name = _checked(guard.check_name, "--host-name", args.host_name)
    else:
        name = socket.gethostname() or "this-host"
        if not guard.NAME_RE.fullmatch(name):
            raise CliError(f"this machine's name {name!r} cannot be written into config files; "
                           "give one with --host-name")
    _checked(guard.check_line, "--django-version", args.django_version)
    hosts = [Host(name, profile, services)]
    app_hosts = args.app_hosts
    if app_hosts is not None and app_hosts < 0:
        raise CliError(f"--app-hosts {app_hosts}: expected 0 or more")
    if "gunicorn" in services:
        if app_hosts is not None and app_hosts < 1:
            raise CliError("--app-hosts must be at least 1 when gunicorn is in --services")
        extra = (app_hosts or 1) - 1
    else:
        extra = app_hosts or 0
    # Other app hosts are assumed to be the same size as this one, running Gunicorn only.
    hosts += [Host(f"app{i + 2 if 'gunicorn' in services else i + 1}", profile,
                   frozenset({"gunicorn"})) for i in range(extra)]
    inputs = StackInputs(
        hosts=tuple(hosts), workload=Workload(args.workload), pg_version=args.pg_version,
        connections=args.connections,
        gunicorn_worker_rss_bytes=_size_flag("--worker-rss", args.worker_rss),
        django_version=args.django_version, overrides=_overrides(args.overrides),
    )
    return inputs, name


def _checked(check, flag: str, value: str) -> str:  # type: ignore[no-untyped-def]
    """A guard check whose message names the command-line flag."""
    try:
        return check(flag, value)
    except guard.PlanError as error:
        raise CliError(str(error)) from None


def pgtune_inputs(inputs: StackInputs, profile: HostProfile) -> PgTuneInputs:
    """PGTune's form filled in with the same host: its RAM, whole CPUs, storage, workload."""
    return PgTuneInputs(
        db_version=inputs.pg_version, db_type=inputs.workload.value,
        total_memory_bytes=profile.memory_bytes, cpus=max(1, int(profile.cpus)),
        connections=inputs.connections, storage=profile.storage.value,
    )


def format_table(view: dict[str, object]) -> str:
    host = view["host"]
    assert isinstance(host, dict)
    budget = host["budget"]
    lines = [
        f"host {host['name']}: {human_bytes(host['memory_bytes'])} usable "
        f"({host['memory_source']}), {host['cpus']:g} CPUs ({host['cpu_source']}), "
        f"{host['storage']} ({host['storage_source']})",
        "memory budget: " + ", ".join(
            f"{label} {human_bytes(budget[key])}" for label, key in (
                ("os", "os_reserve_bytes"), ("postgresql", "postgresql_bytes"),
                ("pgbouncer", "pgbouncer_bytes"), ("redis", "redis_bytes"),
                ("gunicorn", "gunicorn_bytes")) if budget[key])
        + f" = {human_bytes(budget['total_bytes'])} of {human_bytes(budget['usable_bytes'])}",
    ]
    reasons = view["reasons"]
    assert isinstance(reasons, dict)
    for service in (*SERVICES, "postgresql_app_role", "django", "sysctl"):
        settings = view.get(service)
        if not isinstance(settings, dict) or not settings:
            continue
        lines.append("")
        lines.append(f"[{service}]")
        width = max(len(name) for name in settings)
        value_width = min(max(len(_show(v)) for v in settings.values()), 44)
        for name, value in settings.items():
            lines.append(f"  {name:<{width}}  {_show(value):<{value_width}}  "
                         f"# {reasons.get(f'{service}.{name}', '')}")
    warnings = view.get("warnings") or []
    if warnings:
        lines.append("")
        lines.extend(f"warning: {w}" for w in warnings)  # type: ignore[union-attr]
    return "\n".join(lines)


def _show(value: object) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def cmd_inspect(args: argparse.Namespace) -> int:
    if args.data_path is not None and (not args.data_path
                                       or not Path(args.data_path).exists()):
        # Otherwise the device of '/' would be reported as if it held the path.
        raise CliError(f"--data-path {args.data_path!r} does not exist; give an existing "
                       "path (the PostgreSQL data directory) or leave the flag out")
    profile = host_inspect.inspect_host(data_path=args.data_path, storage_override=args.storage)
    if args.format == "json":
        print(json.dumps(profile, indent=2, sort_keys=True))
        return 0
    print(f"memory   {human_bytes(profile['memory_bytes'])} ({profile['memory_bytes']} bytes)"
          f"  from {profile['memory_source']}; physical "
          f"{human_bytes(profile['physical_memory_bytes'])}")
    print(f"cpus     {profile['cpus']:g}  from {profile['cpu_source']}; online "
          f"{profile['online_cpus']}")
    print(f"storage  {profile['storage']}  from {profile['storage_source']}")
    print(f"os       {profile['os_id']} {profile['os_version']}"
          f"{'  (in a container)' if profile['in_container'] else ''}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    if args.baseline == "pgtune" and args.overrides:
        raise CliError("--baseline pgtune prints PGTune's own values and ignores --set; "
                       "drop --set to see the baseline, or --baseline to see your overrides")
    inputs, name = inputs_from_args(args)
    if args.baseline == "pgtune":
        if "postgresql" not in inputs.hosts[0].services:
            raise CliError("--baseline pgtune compares PostgreSQL settings; include postgresql "
                           "in --services")
        tune_inputs = pgtune_inputs(inputs, inputs.hosts[0].profile)
        settings = pgtune_settings(tune_inputs)
        if args.format == "json":
            print(json.dumps({"baseline": "pgtune (le0pard/pgtune 7caef27)",
                              "postgresql": settings,
                              "warnings": pgtune_warnings(tune_inputs)}, indent=2))
        else:
            print("# PGTune (le0pard/pgtune 7caef27) for the same inputs")
            for line in pgtune_warnings(tune_inputs):
                print(f"# {line}".rstrip())
            for key, value in settings.items():
                print(f"{key} = {value}")
        return 0
    plan = plan_stack(inputs)
    view = plan.host_view(name)
    if args.format == "json":
        print(json.dumps(view, indent=2))
    else:
        print(format_table(view))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    if not args.out.strip():
        # Path('') is the current directory: an empty variable in a script must not write there.
        raise CliError("--out is empty; give the directory to write into")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {args.out!r} is a file; give a directory")
    inputs, name = inputs_from_args(args)
    plan: Plan = plan_stack(inputs)
    try:
        written = render_host(plan, name, out)
    except OSError as error:
        raise CliError(f"--out {args.out!r}: cannot write there ({error.strerror}); choose a "
                       "writable directory") from None
    for path in written:
        print(path)
    return 0


def _read_json(flag: str, path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise CliError(f"{flag} {path!r}: cannot read it ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise CliError(f"{flag} {path!r}: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise CliError(f"{flag} {path!r}: expected a JSON object")
    return data


def _write(flag: str, path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as error:
        raise CliError(f"{flag} {path!r}: cannot write it ({error.strerror})") from None


def _apply_indexes(dsn: str, findings: list[dict]) -> list[str]:
    """Create each missing index the advisor found, on a connection of its own (autocommit:
    CREATE INDEX CONCURRENTLY cannot run in a transaction); the statements that ran."""
    from stacktune.report import collect as report_collect
    from stacktune.report import indexes as report_indexes

    applied: list[str] = []
    try:
        connection = report_collect.connect(dsn)
    except report_collect.CollectError as error:
        raise CliError(str(error)) from None
    try:
        connection.autocommit = True
        cursor = connection.cursor()
        for item in findings:
            try:
                report_indexes.apply_index(cursor, item)
            except Exception as error:
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise CliError(f"--apply stopped at {item['fix']}: {first} (applied before "
                               f"it: {applied or 'nothing'})") from None
            applied.append(item["fix"])
            print(f"stacktune report: applied {item['fix']}", file=sys.stderr)
    finally:
        connection.close()
    return applied


def cmd_report(args: argparse.Namespace) -> int:
    from stacktune.report import analyse as report_analyse
    from stacktune.report import collect as report_collect
    from stacktune.report import render as report_render
    from stacktune.report.run import collect_from

    plan = _read_json("--plan", args.plan) if args.plan else None
    previous = _read_json("--since", args.since) if args.since else None
    if args.snapshot:
        snapshot = _read_json("--snapshot", args.snapshot)
        source = args.snapshot
    else:
        try:
            snapshot = collect_from(args.dsn, args.pgbouncer, args.redis, args.top)
        except report_collect.CollectError as error:
            raise CliError(str(error)) from None
        source = report_collect.mask_dsn(args.dsn)
    if args.apply:
        if args.snapshot:
            raise CliError("--apply needs --dsn: a saved snapshot cannot create indexes")
        snapshot["missing_indexes"]["applied"] = _apply_indexes(
            args.dsn, snapshot["missing_indexes"].get("findings", []))
    if args.save_snapshot:
        _write("--save-snapshot", args.save_snapshot, json.dumps(snapshot, indent=1) + "\n")
    analysis = report_analyse.analyse(snapshot, plan=plan, previous=previous)
    if args.overrides_out:
        _write("--overrides-out", args.overrides_out,
               report_analyse.overrides_yaml(analysis["proposals"]))
    text = report_render.render(report_render.report_data(snapshot, analysis, source, plan),
                                args.format)
    if args.out:
        _write("--out", args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handler = {"inspect": cmd_inspect, "plan": cmd_plan, "render": cmd_render,
                   "report": cmd_report}[args.command]
        return handler(args)
    except (CliError, PlanError, UnitError, host_inspect.InspectError, ValueError) as error:
        print(f"stacktune: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"stacktune: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
