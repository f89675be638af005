"""The benchmark harness (bench/): parsing, statistics, order, reports. No Docker."""

from __future__ import annotations

import http.server
import io
import json
import re
import shutil
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import django_mix, kit, naive, report, wrk  # noqa: E402
from bench.pgbench import Workload, known_settings, parse_pgbench, pgbench_args, render_conf  # noqa: E402
from bench.progress import Progress, human  # noqa: E402
from bench.run import (  # noqa: E402
    FULL,
    QUICK,
    build_workloads,
    make_settings,
    parse_args,
    pgbouncer_ini,
    size_storms,
    storm_client_count,
    storm_note,
    workload_records,
)
from bench.schedule import interleave, round_orders  # noqa: E402
from bench.stats import paired_ratios, ratio, ratio_spread_text, ratio_text, spread_text, summarize  # noqa: E402

FIXTURES = ROOT / "bench" / "fixtures"


def pgbench_fixture(name: str, clients: int | None = None, exit_code: int = 0) -> dict:
    stdout = (FIXTURES / f"pgbench15-{name}.stdout").read_text()
    stderr = (FIXTURES / f"pgbench15-{name}.stderr").read_text()
    return parse_pgbench(stdout, stderr, clients=clients, exit_code=exit_code)


# --- pgbench output -------------------------------------------------------------

def test_parse_tpcb_run():
    r = pgbench_fixture("tpcb")
    assert r["completed"]
    assert r["tps"] == pytest.approx(2356.356305)
    assert r["transactions"] == 7041
    assert r["failed_transactions"] == 0
    assert r["latency_avg_ms"] == pytest.approx(1.685)
    assert r["latency_stddev_ms"] == pytest.approx(0.742)
    assert r["initial_connection_ms"] == pytest.approx(21.555)
    assert (r["clients"], r["threads"], r["scale"], r["duration_s"]) == (4, 2, 2, 3)
    assert r["server_version"] == "15.20 (Debian 15.20-0+deb12u1)"
    assert r["progress_tps"] == [2219.8, 2595.1, 2222.0]
    assert r["errors"] == 0 and r["aborted_clients"] == 0 and not r["run_aborted"]


def test_parse_select_only_without_stddev():
    r = pgbench_fixture("select")
    assert r["tps"] == pytest.approx(26959.291704)
    assert r["latency_stddev_ms"] is None  # pgbench prints it only with --progress/--rate
    assert r["errors"] == 0


def test_failed_transactions_are_errors():
    r = pgbench_fixture("failed")  # serializable isolation: serialization failures
    assert r["completed"]
    assert r["failed_transactions"] == 6208
    assert r["transactions"] == 1198
    assert r["errors"] == 6208
    assert r["progress_tps"][0] == pytest.approx(441.9)


def test_storm_aborted_clients_are_errors():
    r = pgbench_fixture("storm-direct", clients=400, exit_code=2)
    assert r["completed"] and r["run_aborted"]
    assert r["clients"] == 400
    assert r["aborted_clients"] == 216
    assert r["refused_connections"] == 216
    assert r["errors"] == 216
    assert r["tps"] == pytest.approx(48.849402)
    assert r["average_connection_ms"] == pytest.approx(18.969)
    assert r["exit_code"] == 2


def test_storm_through_pgbouncer_refused_by_max_client_conn():
    r = pgbench_fixture("storm-pgbouncer", clients=1000, exit_code=2)
    assert r["aborted_clients"] == 574
    assert r["errors"] == 574
    assert r["tps"] == pytest.approx(264.079484)


def test_run_without_result_counts_every_client():
    r = pgbench_fixture("fatal", clients=400, exit_code=1)
    assert not r["completed"]
    assert r["tps"] == 0.0
    assert r["errors"] == 400
    assert "could not create connection for client 246" in r["error_message"]


def test_aborted_clients_counted_once_each():
    stderr = ("pgbench: error: client 3 aborted in command 1 (SQL) of script 0; x\n"
              "pgbench: error: client 3 aborted while establishing connection\n"
              "pgbench: error: client 5 aborted while establishing connection\n")
    stdout = (FIXTURES / "pgbench15-tpcb.stdout").read_text()
    assert parse_pgbench(stdout, stderr)["aborted_clients"] == 2


def test_pgbench_args_storm_and_plain():
    storm = Workload("storm-pgbouncer", "t", "bench_s1", 210, port=6432, select_only=True,
                     connect_per_transaction=True, storm=True, no_vacuum=True)
    args = pgbench_args(storm, clients=storm.clients, duration=5, progress=2)
    assert args[:2] == ["pgbench", "--random-seed=42"]
    assert args[-1] == "bench_s1"
    for flag in ("-S", "-C", "-n", "--progress=2"):
        assert flag in args
    assert args[args.index("-p") + 1] == "6432"
    assert args[args.index("-c") + 1] == "210" and args[args.index("-j") + 1] == "2"
    plain = Workload("tpcb-s1", "t", "bench_s1", clients=16)
    args = pgbench_args(plain, clients=plain.clients, duration=60)
    assert args[args.index("-c") + 1] == "16" and args[args.index("-T") + 1] == "60"
    assert "-S" not in args and "-C" not in args
    with pytest.raises(ValueError, match="clients must be at least 1"):
        Workload("storm-direct", "t", "bench_s1", clients=0, storm=True)


# --- conf.d writer ------------------------------------------------------------------

def test_config_writer_quotes_every_value():
    text = render_conf({"work_mem": "74MB", "max_connections": 21, "jit": False,
                        "shared_preload_libraries": "pg_stat_statements,auto_explain",
                        "pg_stat_statements.max": "10000",
                        "log_line_prefix": "%m it's"}, label="stacktune")
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert lines == [
        "jit = 'off'",
        "log_line_prefix = '%m it''s'",
        "max_connections = '21'",
        "pg_stat_statements.max = '10000'",
        "shared_preload_libraries = 'pg_stat_statements,auto_explain'",
        "work_mem = '74MB'",
    ]
    assert render_conf({}, label="default").strip().splitlines()[0].startswith("#")
    assert all(ln.startswith("#") for ln in render_conf({}).splitlines())


def test_config_writer_rejects_bad_names_and_values():
    with pytest.raises(ValueError):
        render_conf({"work_mem = 1GB\nfsync": "off"})
    with pytest.raises(ValueError):
        render_conf({"work_mem": "1GB\nfsync = off"})
    assert render_conf({"a": "C:\\x"}).splitlines()[-1] == "a = 'C:\\\\x'"


def test_known_settings_drops_unknown_keeps_preloaded_extensions():
    plan = {"shared_buffers": "1GB", "wal_compression": "lz4", "new_in_pg18": "on",
            "shared_preload_libraries": "pg_stat_statements",
            "pg_stat_statements.max": "10000", "auto_explain.log_min_duration": "1s"}
    kept, dropped = known_settings(plan, {"shared_buffers", "wal_compression",
                                          "shared_preload_libraries"})
    assert set(kept) == {"shared_buffers", "wal_compression", "shared_preload_libraries",
                         "pg_stat_statements.max"}
    assert dropped == ["auto_explain.log_min_duration", "new_in_pg18"]


def test_pgbouncer_ini_from_the_plan():
    text, used = pgbouncer_ini({"pool_mode": "transaction", "auth_type": "hba",
                                "default_pool_size": "6", "max_client_conn": "410"},
                               ["bench_s1", "bench_s2"])
    assert "bench_s2 = host=127.0.0.1 port=5432 dbname=bench_s2" in text
    assert "pool_mode = transaction" in text and "max_client_conn = 410" in text
    assert used["auth_type"] == "scram-sha-256"
    assert "auth_file = /etc/pgbouncer/userlist.txt" in text


# --- wrk ------------------------------------------------------------------------------

def test_parse_wrk_ok():
    r = wrk.parse_wrk((FIXTURES / "wrk-ok.txt").read_text())
    assert not r["failed"]
    assert r["requests"] == 2145
    assert r["requests_per_s"] == pytest.approx(2145 / 2.099726)
    assert r["p50_ms"] == pytest.approx(4.666)
    assert r["p95_ms"] == pytest.approx(12.582)
    assert r["p99_ms"] == pytest.approx(16.846)
    assert r["errors"] == 0


def test_parse_wrk_non2xx_and_socket_errors():
    r = wrk.parse_wrk((FIXTURES / "wrk-errors.txt").read_text())
    assert r["non2xx"] == 44
    assert (r["errors_read"], r["errors_timeout"], r["errors_connect"]) == (30, 9, 0)
    assert r["socket_errors"] == 39
    assert r["errors"] == 83
    assert r["p99_ms"] == pytest.approx(1.924)
    r = wrk.parse_wrk((FIXTURES / "wrk-404.txt").read_text())
    assert r["errors"] == r["requests"] == 2231


def test_parse_wrk_text_report_without_lua_block():
    text = (FIXTURES / "wrk-errors.txt").read_text().split("--- stacktune-bench ---")[0]
    r = wrk.parse_wrk(text)
    assert r["requests_per_s"] == pytest.approx(170.05)
    assert r["requests"] == 511 and r["duration_s"] == pytest.approx(3.0)
    assert r["p50_ms"] == pytest.approx(0.069) and r["p99_ms"] == pytest.approx(1.92)
    assert r["p95_ms"] is None  # wrk --latency prints no p95
    assert r["latency_avg_ms"] == pytest.approx(0.13509)
    assert r["errors"] == 44 + 39


def test_parse_wrk_that_could_not_run():
    r = wrk.parse_wrk((FIXTURES / "wrk-refused.txt").read_text())
    assert r["failed"] and r["requests_per_s"] == 0.0
    assert "Connection refused" in r["error_message"]


def test_run_wrk_for_real_against_a_local_server():
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install -y wrk)")
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("X-Forwarded-Proto"))
            body = b"[]" if self.path == "/api/" else b"missing"
            self.send_response(200 if self.path == "/api/" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        ok = wrk.run_wrk(base + "/api/", duration=1, connections=2, threads=1)
        bad = wrk.run_wrk(base + "/nope", duration=1, connections=2, threads=1)
    finally:
        server.shutdown()
    assert not ok["failed"] and ok["requests"] > 0 and ok["errors"] == 0
    assert ok["p95_ms"] is not None and ok["requests_per_s"] > 0
    assert bad["non2xx"] == bad["requests"] > 0 and bad["errors"] >= bad["non2xx"]
    assert set(seen) == {"https"}


def test_run_wrk_over_tls_to_a_self_signed_server_sends_no_forwarded_proto(tmp_path):
    """wrk does the TLS (no certificate check); behind TLS the proxy sets the scheme."""
    if shutil.which("wrk") is None or shutil.which("openssl") is None:
        pytest.skip("wrk or openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects

        def do_GET(self):
            seen.append(self.headers.get("X-Forwarded-Proto"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sample = wrk.run_wrk(f"https://127.0.0.1:{server.server_address[1]}/api/",
                             duration=1, connections=2, threads=1)
    finally:
        server.shutdown()
    assert not sample["failed"] and sample["requests"] > 0 and sample["errors"] == 0
    assert seen and set(seen) == {None}


def test_wrk_args_send_no_forwarded_proto_to_https():
    args = wrk.wrk_args("https://127.0.0.1:8443/items/", duration=10, connections=16)
    assert "-H" not in args and args[-1] == "https://127.0.0.1:8443/items/"
    assert wrk.default_headers("HTTPS://host/") == {}
    assert wrk.default_headers("http://host/") == {"X-Forwarded-Proto": "https"}
    # Headers a config names are sent whatever the scheme.
    args = wrk.wrk_args("https://h/", headers={"Host": "localhost"})
    assert args[args.index("-H") + 1] == "Host: localhost"


def test_http_phase_headers_per_stack_else_config_else_none():
    seen = []

    def runner(url, *, headers, **_):
        seen.append((url, headers))
        return {"requests_per_s": 1.0, "errors": 0}

    config = {"stacks": [{"name": "direct", "base_url": "http://a",
                          "headers": {"X-Forwarded-Proto": "https"}},
                         {"name": "nginx", "base_url": "https://a"}],
              "endpoints": [{"name": "list", "path": "/"}], "duration": 1, "warmup": 0}
    wrk.run_http_phase(config, rounds=1, say=lambda _: None, runner=runner, shell=print)
    assert seen == [("http://a/", {"X-Forwarded-Proto": "https"}), ("https://a/", None)]
    seen.clear()
    wrk.run_http_phase({**config, "headers": {"Host": "x"}}, rounds=1, say=lambda _: None,
                       runner=runner, shell=print)
    assert [h for _, h in seen] == [{"X-Forwarded-Proto": "https"}, {"Host": "x"}]


def test_http_phase_keeps_the_runs_before_a_failed_setup():
    def runner(url, **_):
        return {"requests_per_s": 1.0, "errors": 0}

    def shell(command):
        if command == "up b":
            raise subprocess.CalledProcessError(2, command)

    config = {"stacks": [{"name": "a", "base_url": "http://a", "setup": "up a"},
                         {"name": "b", "base_url": "http://b", "setup": "up b"}],
              "endpoints": [{"name": "list", "path": "/"}], "duration": 1, "warmup": 0}
    kept: list[dict] = []
    with pytest.raises(subprocess.CalledProcessError):
        wrk.run_http_phase(config, rounds=2, say=lambda _: None, runner=runner, shell=shell,
                           samples=kept)
    assert [(s["round"], s["stack"]) for s in kept] == [(1, "a")]


def test_http_config_loads_both_stacks_through_nginx():
    config = naive.expand(json.loads((ROOT / "bench" / "http.json").read_text()),
                          {"STACKTUNE_DEMO_HTTPS_PORT": "8543", "STACKTUNE_DEMO_PORT": "8100"})
    urls = {s["name"]: s["base_url"] for s in config["stacks"]}
    assert urls == {"untuned": "https://127.0.0.1:8543", "stacktune": "https://127.0.0.1:8543"}
    assert "X-Forwarded-Proto" not in config.get("headers", {})
    assert not any("headers" in s for s in config["stacks"])
    for stack in config["stacks"]:
        args = wrk.wrk_args(stack["base_url"] + "/", headers=config.get("headers"))
        assert "-H" not in args
    untuned = next(s for s in config["stacks"] if s["name"] == "untuned")
    assert "-i bench/inventory/untuned site.yml bench/untuned-nginx.yml" in untuned["setup"]
    # The untuned proxy's files: Debian's nginx.conf and the minimal site it includes.
    debian = (ROOT / "bench" / "fixtures" / "nginx-debian-bookworm.conf").read_text()
    assert "worker_processes auto;" in debian and "include /etc/nginx/sites-enabled/*;" in debian
    site = (ROOT / "bench" / "fixtures" / "nginx-untuned-site.conf").read_text()
    assert "proxy_pass http://127.0.0.1:8000;" in site and "keepalive" not in site
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site


def test_wrk_units():
    assert wrk.to_ms("69.00us") == pytest.approx(0.069)
    assert wrk.to_ms("1.92s") == pytest.approx(1920)
    assert wrk.to_ms("2.00m") == pytest.approx(120000)
    with pytest.raises(ValueError):
        wrk.to_ms("fast")


def test_wrk_args_carry_the_header():
    args = wrk.wrk_args("http://127.0.0.1:8000/items/", duration=10, connections=16)
    assert args[args.index("-H") + 1] == "X-Forwarded-Proto: https"
    assert "--latency" in args and args[-1] == "http://127.0.0.1:8000/items/"


def test_http_phase_interleaves_stacks_and_runs_setup():
    calls, shell = [], []

    def runner(url, *, duration, **_):
        calls.append((url, duration))
        return {"requests_per_s": 100.0, "errors": 0}

    config = {"stacks": [{"name": "default", "base_url": "http://a", "setup": "up a",
                          "teardown": "down a"},
                         {"name": "stacktune", "base_url": "http://b/"}],
              "endpoints": [{"name": "list", "path": "/items/"},
                            {"name": "json", "path": "/api/"}],
              "duration": 3, "warmup": 1}
    samples = wrk.run_http_phase(config, rounds=2, say=lambda _: None, runner=runner,
                                 shell=shell.append)
    assert [(s["round"], s["stack"], s["endpoint"]) for s in samples][:4] == [
        (1, "default", "list"), (1, "default", "json"),
        (1, "stacktune", "list"), (1, "stacktune", "json")]
    assert len(samples) == 8
    assert calls[:2] == [("http://a/items/", 1), ("http://a/items/", 3)]
    assert calls[4][0] == "http://b/items/"
    assert shell == ["up a", "down a", "up a", "down a"]


# --- statistics, order, progress ---------------------------------------------------

def test_summarize_median_spread_quartiles():
    s = summarize([30.0, 10.0, 20.0])
    assert (s["n"], s["median"], s["min"], s["max"]) == (3, 20.0, 10.0, 30.0)
    assert (s["q1"], s["q3"], s["iqr"]) == (15.0, 25.0, 10.0)
    assert summarize([5.0])["iqr"] == 0.0
    assert summarize([None, 4.0, 2.0])["median"] == 3.0
    assert summarize([])["median"] is None
    assert spread_text(summarize([1000.0, 1234.5]), 1) == "1,000.0-1,234.5"
    assert spread_text(summarize([7.0])) == "(1 round)"


def test_ratio():
    assert ratio(150.0, 100.0) == pytest.approx(1.5)
    assert ratio(1.0, 0.0) is None and ratio(None, 1.0) is None
    assert ratio_text(1.234) == "1.23x" and ratio_text(None) == "-"


def test_interleaving_order():
    steps = interleave(2, ["A", "B", "C"], ["w1", "w2"])
    assert [s.config for s in steps if s.workload == "w1"] == ["A", "B", "C", "A", "B", "C"]
    assert [(s.round, s.config, s.workload) for s in steps[:4]] == [
        (1, "A", "w1"), (1, "A", "w2"), (1, "B", "w1"), (1, "B", "w2")]
    assert [s.index for s in steps] == list(range(1, 13))
    assert [s.first_of_config for s in steps[:4]] == [True, False, True, False]
    with pytest.raises(ValueError):
        interleave(0, ["A"], ["w"])


def test_rotated_order_puts_each_configuration_first_once():
    assert round_orders(3, ["A", "B", "C"], rotate=True) == [
        ["A", "B", "C"], ["B", "C", "A"], ["C", "A", "B"]]
    assert round_orders(2, ["A", "B", "C"]) == [["A", "B", "C"], ["A", "B", "C"]]
    steps = interleave(4, ["A", "B", "C"], ["w"], rotate=True)
    assert "".join(s.config for s in steps) == "ABCBCACABABC"


def test_progress_line_estimates_time_left():
    ticks = iter([0.0, 0.0, 100.0, 100.0])
    stream = io.StringIO()
    p = Progress(stream=stream, clock=lambda: next(ticks), overhead=5.0)
    p.step(3, 27, "round 1 pgtune select-only", 60, remaining_planned=25 * 60,
           remaining_steps=25)
    assert "[3/27] round 1 pgtune select-only (60 s) — about 27 min left" in stream.getvalue()
    assert human(45) == "45 s" and human(3 * 3600 + 120) == "3 h 02 min"


# The stacktune plan's figures the storms are sized from (4 GiB, 2 CPUs, web).
PLAN = {"postgresql": {"max_connections": "21"},
        "pgbouncer": {"max_client_conn": "410", "default_pool_size": "6",
                      "max_db_connections": "8"}}


def test_storm_client_count_comes_from_the_stacktune_plan():
    assert storm_client_count(PLAN, 10) == (210, "10 x stacktune's planned max_connections, 21")
    assert storm_client_count(PLAN, 3)[0] == 63
    assert storm_client_count(PLAN, 10, override=500) == (500, "--storm-clients")
    with pytest.raises(ValueError, match="give --storm-clients N"):
        storm_client_count({"postgresql": {}}, 10)
    with pytest.raises(ValueError, match="--storm-factor must be at least 1"):
        storm_client_count(PLAN, 0)


def test_storms_load_every_configuration_with_the_same_clients():
    """One client count for default, pgtune and stacktune, directly and via PgBouncer."""
    s = make_settings(parse_args(["--quick"]))
    size_storms(s, PLAN)
    storms = [w for w in s.workloads if w.storm]
    assert [(w.name, w.port, w.clients) for w in storms] == [
        ("storm-direct", 5432, 210), ("storm-pgbouncer", 6432, 210)]
    assert "210 clients for every configuration (10 x stacktune's planned " \
        "max_connections, 21)" in storms[0].title
    records = {r["name"]: r for r in workload_records(s)}
    assert records["storm-pgbouncer"]["clients"] == 210
    assert (f" -c 210 -j 2 -T {QUICK['storm_duration']} -S -C -n "
            in records["storm-pgbouncer"]["command"])
    note = storm_note(s, PLAN["pgbouncer"])
    assert note.startswith("Storms: 210 clients for every configuration")
    assert "the same PgBouncer, the stacktune plan's (max_client_conn 410, " \
        "default_pool_size 6, max_db_connections 8)" in note
    # --storm-clients wins over the plan, and sizes the storms before any plan.
    s = make_settings(parse_args(["--quick", "--storm-clients", "64", "--storm-factor", "3"]))
    assert [w.clients for w in s.workloads if w.storm] == [64, 64]
    size_storms(s, PLAN, 64)
    assert [w.clients for w in s.workloads if w.storm] == [64, 64]
    size_storms(s, PLAN)
    assert [w.clients for w in s.workloads if w.storm] == [63, 63]


@pytest.mark.parametrize("argv, message", [
    (["--storm-clients", "0"], "argument --storm-clients: must be at least 1, got 0"),
    (["--storm-factor", "ten"], "argument --storm-factor: not a whole number: 'ten'")])
def test_bad_storm_arguments_are_refused_by_name(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err


def test_quick_and_full_workloads():
    quick = make_settings(parse_args(["--quick"]))
    # The storms wait for the stacktune plan, which sizes them.
    assert [w.name for w in quick.workloads] == ["tpcb-s1", "select-s1", "django-read-write"]
    size_storms(quick, PLAN)
    assert [w.name for w in quick.workloads][-2:] == ["storm-direct", "storm-pgbouncer"]
    assert quick.rounds == QUICK["rounds"] == 1
    assert (quick.plan_memory, quick.docker_memory, quick.plan_cpus) == ("4GiB", "4096m", "2")
    full = make_settings(parse_args([]))
    assert "tpcb-s2" in [w.name for w in full.workloads] and full.rounds == FULL["rounds"]
    assert FULL["scale_s1"] * 15 > 128 and FULL["scale_s2"] * 15 > 4096
    size_storms(full, PLAN)
    storm = next(w for w in build_workloads(full) if w.name == "storm-pgbouncer")
    assert storm.port == 6432 and storm.clients == 210 and storm.storm


# --- kit hook -----------------------------------------------------------------------

def test_kit_timing_with_trivial_commands():
    commands = kit.kit_commands(converge="true", check="true", facts="true", reset="true")
    assert commands["idempotent"] == "true"
    samples = kit.time_kit(commands, rounds=2, say=lambda _: None)
    assert [s["step"] for s in samples] == ["converge", "idempotent", "check", "facts"] * 2
    assert all(s["ok"] and s["seconds"] >= 0 for s in samples)


def test_kit_timing_clock_callables_and_failures():
    ticks = iter([0.0, 12.0, 12.0, 14.0, 14.0, 15.0])

    def boom():
        raise RuntimeError("unreachable host")

    samples = kit.time_kit({"converge": lambda: None, "idempotent": "exit 3", "facts": boom},
                           clock=lambda: next(ticks), say=lambda _: None)
    assert [s["seconds"] for s in samples] == [12.0, 2.0, 1.0]
    assert [s["exit_code"] for s in samples] == [0, 3, 1]
    assert "unreachable host" in samples[2]["error"]
    summary = report.summarize_kit(samples)
    assert summary["converge"]["over_floor_s"] == 11.0
    assert summary["idempotent"]["failures"] == 1


def test_kit_records_cpu_and_load_beside_wall_time():
    """A busy machine stretches wall time: each step also says its CPU and the load."""
    clock = iter([0.0, 90.0])
    cpu = iter([3.0, 20.5])
    in_container = iter([100.0, 117.25])
    load = iter([9.5, 11.0])
    samples = kit.time_kit({"idempotent": "true"}, clock=lambda: next(clock),
                           cpu=lambda: next(cpu), container_cpu=lambda: next(in_container),
                           load=lambda: next(load), say=lambda _: None)
    assert samples[0]["seconds"] == 90.0
    assert samples[0]["controller_cpu_s"] == 17.5
    assert samples[0]["container_cpu_s"] == 17.25
    assert (samples[0]["load1_start"], samples[0]["load1_end"]) == (9.5, 11.0)
    # A real command's CPU is counted: a busy loop of about 0.3 s.
    busy = kit.time_kit({"facts": f"{sys.executable} -c 'import time; t = time.process_time()\n"
                                  "while time.process_time() - t < 0.3: pass'"},
                        say=lambda _: None)[0]
    assert busy["ok"] and busy["controller_cpu_s"] >= 0.25
    assert busy["container_cpu_s"] is None
    summary = report.summarize_kit(samples)["idempotent"]
    assert summary["controller_cpu_s"]["median"] == 17.5
    assert summary["container_cpu_s"]["median"] == 17.25
    assert summary["load1"] == [9.5, 11.0]
    md = "\n".join(report.kit_table({"summary": {"kit": report.summarize_kit(samples)}}))
    assert ("| second converge (idempotent) | 90.0 | (1 round) | - | 17.5 | 17.2 | 9.5-11.0 | 0 |"
            in md)


def test_kit_config_file(tmp_path):
    path = tmp_path / "kit.json"
    path.write_text(json.dumps({"converge": "a", "facts": "b", "rounds": 2}))
    assert kit.load_kit_config(path)["rounds"] == 2
    path.write_text(json.dumps({"converj": "a"}))
    with pytest.raises(ValueError):
        kit.load_kit_config(path)
    example = Path(kit.__file__).with_name("kit.json")
    assert set(kit.load_kit_config(example)) >= {"converge", "check", "facts", "container"}


# --- report ---------------------------------------------------------------------------

def _sample(config, workload, rnd, tps, errors=0, clients=16):
    return {"config": config, "workload": workload, "round": rnd, "tps": tps,
            "latency_avg_ms": 1000 * clients / tps if tps else None,
            "latency_stddev_ms": None, "errors": errors, "clients": clients,
            "transactions": int(tps * 30)}


def fake_results() -> dict:
    samples = []
    for rnd, factor in ((1, 1.0), (2, 1.1), (3, 0.9)):
        samples += [_sample("default", "tpcb-s1", rnd, 1000 * factor),
                    _sample("pgtune", "tpcb-s1", rnd, 1200 * factor),
                    _sample("stacktune", "tpcb-s1", rnd, 1500 * factor),
                    _sample("default", "storm-direct", rnd, 50, errors=600, clients=1000),
                    _sample("pgtune", "storm-direct", rnd, 40, errors=1800, clients=2000),
                    _sample("stacktune", "storm-direct", rnd, 60, errors=190, clients=210)]
    results = {
        "mode": "full", "rounds": 3, "samples": samples,
        "round_orders": round_orders(3, ["default", "pgtune", "stacktune"], rotate=True),
        "configs": [{"name": "default", "effective": {"shared_buffers": "128MB"}},
                    {"name": "pgtune", "effective": {"shared_buffers": "1GB"}},
                    {"name": "stacktune", "effective": {"shared_buffers": "913MB"},
                     "dropped": ["x.y"]}],
        "workloads": [{"name": "tpcb-s1", "title": "TPC-B-like, scale 50", "short": "TPC-B",
                       "command": "pgbench -c 16", "duration": 60, "rounds": 3,
                       "storm": False},
                      {"name": "storm-direct", "title": "Storm", "short": "storm",
                       "command": "pgbench -C", "duration": 30, "rounds": 3, "storm": True}],
        "environment": {"timestamp_utc": "2026-01-01T00:00:00Z", "cpu_model": "Test CPU",
                        "host_cpus": 2, "load_average_start": ["0.5", "1", "1"],
                        "load_average_end": ["3.5", "2", "1"],
                        "container_limits": "--memory 4096m --cpus 2"},
        "kit": [{"step": "converge", "seconds": 60.0, "ok": True},
                {"step": "facts", "seconds": 5.0, "ok": True}],
        "http": [{"stack": st, "endpoint": "list page", "round": 1, "requests_per_s": rps,
                  "p50_ms": 5.0, "p95_ms": 9.0, "p99_ms": 20.0, "errors": 0}
                 for st, rps in (("default", 300.0), ("stacktune", 450.0))],
    }
    results["summary"] = {
        "pgbench": report.summarize_groups(samples, "workload", "config", "tps",
                                           ("default", "pgtune", "stacktune"),
                                           extra=("latency_avg_ms",)),
        "kit": report.summarize_kit(results["kit"]),
        "http": report.summarize_groups(results["http"], "endpoint", "stack",
                                        "requests_per_s", ("default", "stacktune"),
                                        baselines=("default",),
                                        extra=("p50_ms", "p95_ms", "p99_ms")),
    }
    results["summary"]["ratios"] = report.comparison_summary(results)
    return results


def test_summary_ratios():
    summary = fake_results()["summary"]["pgbench"]["tpcb-s1"]
    assert summary["stacktune"]["tps"]["median"] == 1500.0
    assert summary["stacktune"]["tps"]["min"] == pytest.approx(1350.0)
    assert summary["_ratios"]["stacktune/default"] == pytest.approx(1.5)
    assert summary["_ratios"]["stacktune/pgtune"] == pytest.approx(1.25)
    storm = fake_results()["summary"]["pgbench"]["storm-direct"]
    assert storm["pgtune"]["errors"] == 5400 and storm["pgtune"]["clients_total"] == 6000


def test_markdown_rendering():
    md = report.render_markdown(fake_results())
    assert md.startswith("# stacktune benchmark — 2026-01-01T00:00:00Z")
    assert "### TPC-B-like, scale 50" in md
    assert ("| configuration | clients | median tps | spread (min-max) | latency avg (ms) "
            "| errors (all rounds) | vs default | vs pgtune |") in md
    assert "| stacktune | 16 | 1,500.0 | 1,350.0-1,650.0 |" in md
    assert "stacktune / default: **1.50x** · stacktune / pgtune: **1.25x**" in md
    # storm: 3 x 1200 transactions (one connection each) and 5400 refused connections
    assert "| pgtune | 2000 | 40.0 | 40.0-40.0 | 50,000.00 | 5400 (60% of connections) |" in md
    assert "round 2: pgtune, stacktune, default" in md
    assert "**Warning:** the machine was busy" in md
    assert "**How errors are counted.**" in md
    assert "| facts-only play (floor) | 5.0 |" in md
    assert "| stacktune | 450.0 |" in md and "1.50x" in md
    assert "| `shared_buffers` | 128MB | 1GB | 913MB |" in md
    assert "Dropped (unknown to this PostgreSQL): stacktune: x.y" in md


def test_write_results(tmp_path):
    pytest.importorskip("matplotlib")
    paths = report.write_results(fake_results(), tmp_path / "out")
    assert set(paths) == {"json", "md", "png"}
    assert json.loads(paths["json"].read_text())["summary"]["pgbench"]["tpcb-s1"]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the summary: stacktune over each baseline, from paired rounds ----------------------

def test_paired_ratios_pair_round_k_with_round_k():
    entry = paired_ratios({1: 150.0, 2: 121.0, 3: 117.0}, {1: 100.0, 2: 110.0, 3: 90.0})
    assert entry["per_round"] == pytest.approx({"1": 1.5, "2": 1.1, "3": 1.3})
    assert (entry["median"], entry["min"], entry["max"], entry["rounds"]) == pytest.approx(
        (1.3, 1.1, 1.5, 3))
    # A round missing on one side, or a baseline of 0 tps, does not count.
    entry = paired_ratios({1: 150.0, 2: 121.0, 3: 50.0}, {1: 100.0, 3: 0.0})
    assert (entry["median"], entry["rounds"], entry["per_round"]) == (1.5, 1, {"1": 1.5})
    assert ratio_spread_text(entry) == "1.50x (1 round)"
    assert ratio_spread_text(paired_ratios({}, {})) == "-"
    assert ratio_spread_text({"median": 1.3, "min": 1.1, "max": 1.5, "rounds": 3}) == \
        "1.30x [1.10-1.50]"


def summary_fixture() -> dict:
    """Three rounds of pgbench (an older storm with per-configuration clients) and two of
    HTTP; each round's ratio differs, so the median of ratios is not the ratio of medians."""
    samples = []
    for rnd, (d, p, s) in enumerate(((100.0, 120.0, 150.0), (110.0, 110.0, 121.0),
                                     (90.0, 130.0, 117.0)), start=1):
        samples += [_sample("default", "tpcb-s1", rnd, d), _sample("pgtune", "tpcb-s1", rnd, p),
                    _sample("stacktune", "tpcb-s1", rnd, s),
                    _sample("default", "storm-direct", rnd, 50.0, errors=600, clients=1000),
                    _sample("pgtune", "storm-direct", rnd, 40.0, errors=1800, clients=2000),
                    _sample("stacktune", "storm-direct", rnd, 60.0, errors=190, clients=210),
                    _sample("default", "storm-pgbouncer", rnd, 300.0, clients=210),
                    _sample("pgtune", "storm-pgbouncer", rnd, 330.0, clients=210),
                    _sample("stacktune", "storm-pgbouncer", rnd, 360.0, clients=210)]
    http = [{"stack": stack, "endpoint": "list page", "round": rnd, "requests_per_s": rps,
             "p50_ms": 5.0, "p95_ms": 9.0, "p99_ms": 20.0, "errors": 0}
            for stack, rnd, rps in (("untuned", 1, 30.0), ("stacktune", 1, 90.0),
                                    ("untuned", 2, 32.0), ("stacktune", 2, 128.0))]
    workloads = [{"name": "tpcb-s1", "short": "TPC-B, scale 50", "storm": False},
                 {"name": "storm-direct", "short": "storm, direct", "storm": True},
                 {"name": "storm-pgbouncer", "short": "storm, via PgBouncer", "storm": True}]
    results = {"samples": samples, "http": http, "workloads": workloads}
    results["summary"] = {"pgbench": report.summarize_groups(
        samples, "workload", "config", "tps", ("default", "pgtune", "stacktune"))}
    return results


def test_comparison_summary_values():
    ratios = report.comparison_summary(summary_fixture())
    assert list(ratios) == [
        "tpcb-s1.stacktune_over_default", "tpcb-s1.stacktune_over_pgtune",
        "storm-direct.stacktune_over_default", "storm-direct.stacktune_over_pgtune",
        "storm-pgbouncer.stacktune_over_default", "storm-pgbouncer.stacktune_over_pgtune",
        "http.list page.stacktune_over_untuned"]
    def figures(key):
        e = ratios[key]
        return e["median"], e["min"], e["max"], e["rounds"]
    assert figures("tpcb-s1.stacktune_over_default") == pytest.approx((1.3, 1.1, 1.5, 3))
    # 150/120, 121/110, 117/130; the ratio of the medians would be 121/120.
    assert figures("tpcb-s1.stacktune_over_pgtune") == pytest.approx((1.1, 0.9, 1.25, 3))
    assert figures("storm-pgbouncer.stacktune_over_pgtune") == pytest.approx(
        (360 / 330, 360 / 330, 360 / 330, 3))
    assert figures("http.list page.stacktune_over_untuned") == pytest.approx((3.5, 3.0, 4.0, 2))
    assert ratios["tpcb-s1.stacktune_over_default"]["same_clients"] is True
    assert ratios["storm-pgbouncer.stacktune_over_default"]["same_clients"] is True
    assert ratios["storm-direct.stacktune_over_default"]["same_clients"] is False
    assert not any("best" in key for key in ratios)  # no sweep, no best point


def test_summary_tables_one_line_per_workload():
    results = summary_fixture()
    md = "\n".join(report.summary_tables(results))
    assert "## Summary: stacktune over each baseline" in md
    assert ("| workload (pgbench) | stacktune / default | stacktune / PGTune | rounds "
            "| refused connections: default / PGTune / stacktune |") in md
    assert "| TPC-B, scale 50 | 1.30x [1.10-1.50] | 1.10x [0.90-1.25] | 3 | - |" in md
    # 3 x 1500 transactions and 1800 refused for default: 29% of connection attempts.
    assert "| storm, direct | 1.20x [1.20-1.20] † | 1.50x [1.50-1.50] † | 3 | 29% / 60% / 10% |" \
        in md
    assert "| storm, via PgBouncer | 1.20x [1.20-1.20] | 1.09x [1.09-1.09] | 3 | 0% / 0% / 0% |" \
        in md
    assert "† The configurations ran different client counts here" in md
    assert "| list page | stacktune / untuned | 3.50x [3.00-4.00] | 2 |" in md
    # results.md has the same tables, from summary.ratios.
    full = report.render_markdown(fake_results())
    assert "| TPC-B | 1.50x [1.50-1.50] | 1.25x [1.25-1.25] | 3 | - |" in full
    assert full.index("## Summary: stacktune over each baseline") < \
        full.index("## PostgreSQL (pgbench)")


def test_ratio_bars_for_the_chart():
    bars = report.ratio_bars(summary_fixture())
    assert [b["label"] for b in bars][:3] == [
        "TPC-B, scale 50: stacktune / default", "TPC-B, scale 50: stacktune / PGTune",
        "storm, direct: stacktune / default (different clients)"]
    assert bars[-1]["label"] == "HTTP list page: stacktune / untuned"
    assert (bars[1]["median"], bars[1]["min"], bars[1]["max"]) == pytest.approx((1.1, 0.9, 1.25))


def test_summary_md_command_prints_the_tables(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(summary_fixture()))
    proc = subprocess.run([sys.executable, "-m", "bench.report", "--summary-md", str(path)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Median of the per-round ratios")
    assert "| TPC-B, scale 50 | 1.30x [1.10-1.50] | 1.10x [0.90-1.25] | 3 | - |" in proc.stdout
    assert "| list page | stacktune / untuned | 3.50x [3.00-4.00] | 2 |" in proc.stdout
    path.write_text(json.dumps({"samples": []}))
    proc = subprocess.run([sys.executable, "-m", "bench.report", "--summary-md", str(path)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "no pgbench or HTTP samples to compare" in proc.stderr


# --- the Django-shaped workload ----------------------------------------------------------

def test_django_shape_sizes_by_scale():
    shape = django_mix.Shape(2)
    assert (shape.authors, shape.articles, shape.comments) == (200, 20_000, 100_000)
    assert shape.approx_mb == 2 * django_mix.MB_PER_SCALE
    with pytest.raises(ValueError, match="Django-shaped scale must be at least 1"):
        django_mix.Shape(0)


def test_django_load_sql_is_the_demo_schema_at_that_scale():
    sql = django_mix.load_sql(django_mix.Shape(2))
    for table in ("publishing_author", "publishing_article", "publishing_comment"):
        assert f"CREATE TABLE {table} (" in sql
    for index in ("article_published_idx ON publishing_article (published_at DESC, id DESC)",
                  "comment_article_created_idx\n    ON publishing_comment "
                  "(article_id, created_at DESC, id DESC)",
                  "publishing_article_author_id ON publishing_article (author_id)"):
        assert f"CREATE INDEX {index}" in sql
    assert "FROM generate_series(1, 200) AS i;" in sql          # authors
    assert "FROM generate_series(1, 20000) AS i;" in sql        # articles
    assert "FROM generate_series(1, 100000) AS c;" in sql       # comments
    assert "1 + i % 200\n" in sql and "1 + c % 20000\n" in sql  # every foreign key exists
    assert "generate_series(1, 40) AS k" in sql                 # 40 md5s: 1,280-char bodies
    # Indexes after the rows, statistics last.
    assert sql.index("INSERT INTO publishing_comment") < sql.index("CREATE INDEX")
    assert sql.rstrip().endswith(
        "VACUUM ANALYZE publishing_author, publishing_article, publishing_comment;")


def test_django_scripts_use_only_variables_they_are_given():
    given = {"articles", "authors"}                    # -D, from mix_args
    builtin = {"client_id", "scale", "random_seed"}    # pgbench's own
    for name, text in django_mix.SCRIPTS.items():
        set_here = set(re.findall(r"^\\set (\w+) ", text, re.M))
        used = set(re.findall(r"(?<![:\w]):([a-z_]+)", text))
        assert used <= given | builtin | set_here, (name, used - given - builtin - set_here)
        assert text.endswith(";\n")
    assert "LIMIT 20 OFFSET (:page - 1) * 20;" in django_mix.SCRIPTS["list"]
    assert "SELECT COUNT(*) AS __count FROM publishing_article WHERE author_id = :au;" in \
        django_mix.SCRIPTS["list"]
    assert "INNER JOIN publishing_author au" in django_mix.SCRIPTS["detail"]
    assert "RETURNING id;" in django_mix.SCRIPTS["comment"]


def test_django_mix_arguments_and_workloads():
    args = django_mix.mix_args("read-mostly", django_mix.Shape(2), "/var/tmp/d/")
    assert args == ("-f", "/var/tmp/d/django-detail.sql@70", "-f", "/var/tmp/d/django-list.sql@25",
                    "-f", "/var/tmp/d/django-comment.sql@5", "-D", "articles=20000",
                    "-D", "authors=200")
    assert django_mix.mix_text("read-write") == "detail 40%, list 20%, comment 40%"
    with pytest.raises(ValueError, match="unknown Django-shaped mix 'write-only'"):
        django_mix.mix_args("write-only", django_mix.Shape(1), "/x")
    with pytest.raises(ValueError, match="no script named 'search'"):
        django_mix.mix_args("m", django_mix.Shape(1), "/x", mixes={"m": {"search": 1}})
    quick = make_settings(parse_args(["--quick", "--django-scale", "1"]))
    assert [w.name for w in quick.workloads if w.name.startswith("django-")] == \
        ["django-read-write"]  # the mix that runs all three scripts
    django = [w for w in make_settings(parse_args(["--django-scale", "1"])).workloads
              if w.name.startswith("django-")]
    assert [w.name for w in django] == ["django-read-mostly", "django-read-write"]
    cmd = pgbench_args(django[1], clients=django[1].clients, duration=8)
    assert django[1].clients == 16 and django[1].duration == FULL["duration"]
    assert cmd[-1] == "bench_django" and "-n" in cmd and "-S" not in cmd
    assert cmd[cmd.index("-f") + 1] == "/var/tmp/bench-django/django-detail.sql@40"
    assert "articles=10000" in cmd
    assert "fits in the container's 4GiB; 10,000 articles" in django[0].title
    big = make_settings(parse_args(["--django-scale", "200"]))
    assert "larger than the container's 4GiB" in next(
        w.title for w in big.workloads if w.name == "django-read-write")
    assert not [w for w in make_settings(parse_args([])).workloads if w.name.startswith("dj")]
