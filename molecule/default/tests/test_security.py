"""Attacks on the converged single-host stack, tried against the real services.

Each test is an attack an unprivileged local user, the app's own credentials or a
client on the network could try; it asserts the stack refuses it and still serves.
"""

from __future__ import annotations

import json
import time

import pytest
from stacktune_testlib import extra_vars, http_get, inventory_vars, psql, run_playbook

from stacktune.units import parse_redis_memory

APP_TREE = "/srv/app"
CONFIG_DIR = "/etc/stacktune"
# Places under the app's tree the app user may write. None: Gunicorn's worker
# heartbeat files and Python's temporary files go to the unit's private /tmp.
APP_WRITABLE: set[str] = set()
# Idle raw TCP sockets that, before client slots had headroom and a login
# deadline, filled PgBouncer's max_client_conn (22) and blocked the app.
IDLE_SOCKETS = 20


def secrets() -> dict[str, str]:
    """Every secret of the scenario: the Vault-bound variables of its group_vars."""
    return {name: value for name, value in inventory_vars().items()
            if name.endswith(("_password", "secret_key")) and value}


def as_app(host, command: str):
    return host.run("runuser -u app -- sh -c %s", command)


# --- 1. the app user cannot become root -----------------------------------------

@pytest.mark.parametrize("attack", [
    "mv /srv/app/venv /srv/app/venv.old",
    "mkdir /srv/app/venv.planted",
    "touch /srv/app/venv/bin/planted",
    "echo 'import os' >> /srv/app/venv/bin/gunicorn",
    "ln -sf /bin/sh /srv/app/venv/bin/python",
    "touch /srv/app/src/planted.py",
    "echo '# planted' >> /srv/app/src/demo_site/settings.py",
    "mv /srv/app/src /srv/app/src.old",
    "echo '# planted' >> /srv/app/src/demo_site/stacktune_settings.py",
    "touch /srv/app/src/demo_site/__pycache__/planted.cpython-311.pyc",
    "echo '# planted' >> /etc/stacktune/gunicorn.conf.py",
    "touch /srv/app/wheelhouse/planted.whl",
])
def test_app_user_cannot_change_code_venv_or_config(host, attack):
    before = host.check_output("find %s %s -printf '%%p %%s %%T@\\n' | sort | md5sum",
                               APP_TREE, CONFIG_DIR)
    result = as_app(host, attack)
    after = host.check_output("find %s %s -printf '%%p %%s %%T@\\n' | sort | md5sum",
                              APP_TREE, CONFIG_DIR)
    assert result.rc != 0, f"uid app could run: {attack}"
    assert "denied" in result.stderr.lower(), result.stderr
    assert after == before


def app_writable_paths(host) -> set[str]:
    """Every path under the app's tree and stacktune's config the app user may write."""
    found = as_app(host, f"find {APP_TREE} {CONFIG_DIR} -writable 2>/dev/null").stdout
    return set(found.split())


def test_app_user_writes_only_the_declared_places(host):
    assert app_writable_paths(host) == APP_WRITABLE
    home = host.file(APP_TREE)
    assert (home.user, home.group, home.mode) == ("root", "root", 0o755)
    module = host.file("/srv/app/src/demo_site/stacktune_settings.py")
    assert (module.user, module.group, module.mode) == ("root", "app", 0o640)


def test_the_app_still_reads_its_settings_and_serves(host):
    out = host.check_output(
        "cd /srv/app/src && runuser -u app -- /srv/app/venv/bin/python manage.py diffsettings")
    assert "'PORT': 6432" in out
    status, _ = http_get(host, "http://127.0.0.1:8000/", {"X-Forwarded-Proto": "https"})
    assert status == 200


# --- 5. (and 1.) what a converge that fires the handlers exposes -------------------

SAMPLER = r"""
import os, sys, time
out = open(sys.argv[1], "a", buffering=1)
seen = set()
me = str(os.getpid())
while not os.path.exists(sys.argv[1] + ".stop"):
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{pid}/status") as f:
                uid = next(l.split()[1] for l in f if l.startswith("Uid:"))
            exe = os.readlink(f"/proc/{pid}/exe")
        except (OSError, StopIteration):
            continue
        record = "\t".join((uid, exe, cmdline.strip(), environ.strip()))
        if record not in seen:
            seen.add(record)
            out.write(record.replace("\n", " ") + "\n")
    time.sleep(0.01)
"""


@pytest.fixture(scope="module")
def converge_samples(host):
    """Every process seen during two converges that fire the PgBouncer and Redis handlers.

    The first run changes a PgBouncer setting through an override and rewrites a
    touched Redis ACL file (ACL LOAD); the second, a plain re-run, puts both back. The
    password verifiers are read before and after both runs.
    """
    verifiers_before = _verifiers(host)
    samples = "/tmp/stacktune-process-samples"
    host.run("rm -f %s %s.stop", samples, samples)
    host.check_output("nohup python3 -c %s %s >/dev/null 2>&1 &", SAMPLER, samples)
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    try:
        host.check_output("echo >> /etc/redis/users.acl")
        changed = run_playbook(*extra_vars(
            stacktune_overrides={"pgbouncer": {"server_idle_timeout": "599"}}))
        assert changed.returncode == 0, changed.stdout[-3000:]
        assert "Check that PgBouncer took the new configuration" in changed.stdout
        assert "Reload the ACL file live" in changed.stdout
        restored = run_playbook()
        assert restored.returncode == 0, restored.stdout[-3000:]
    finally:
        host.run("touch %s.stop", samples)
        time.sleep(1)
    records = host.file(samples).content_string.splitlines()
    assert len(records) > 100, "the sampler saw too few processes"
    return {"records": records, "since": since, "verifiers_before": verifiers_before,
            "verifiers_after": _verifiers(host)}


def _verifiers(host) -> str:
    return psql(host, "SELECT string_agg(rolname || rolpassword, ',' ORDER BY rolname) "
                      "FROM pg_authid WHERE rolpassword IS NOT NULL")


def test_no_secret_in_process_arguments_or_environment(converge_samples):
    leaks = {name: [r[:200] for r in converge_samples["records"] if secret in r]
             for name, secret in secrets().items()}
    assert {name: found for name, found in leaks.items() if found} == {}


def test_no_secret_in_the_journal_or_var_log(host, converge_samples):
    # Every field (command lines of the processes that logged too), since the converges began.
    journal = host.check_output("journalctl --no-pager -o verbose --since %s",
                                converge_samples["since"])
    assert "Invoked with" in journal            # the journal holds the module runs
    assert "sudo" in journal                    # and what sudo logged of each become
    for name, secret in secrets().items():
        assert secret not in journal, f"{name} in the journal"
        found = host.run("grep -rlF --exclude-dir=journal -e %s /var/log", secret).stdout.split()
        assert found == [], f"{name} in {found}"


def test_root_never_executes_what_the_app_user_can_write(host, converge_samples):
    writable = app_writable_paths(host)
    root_runs = [r.split("\t") for r in converge_samples["records"] if r.startswith("0\t")]
    assert root_runs, "no process of root was sampled"
    from_app_tree = [(exe, cmdline[:120]) for _, exe, cmdline, _ in root_runs
                     if exe.startswith(APP_TREE) or cmdline.startswith(APP_TREE)]
    # Root may run the venv's python (pip freeze) only because nothing in it is app-writable.
    assert not [path for path in writable if path.startswith(f"{APP_TREE}/venv")]
    assert not [(exe, cmdline) for exe, cmdline in from_app_tree
                if any(exe.startswith(path) or cmdline.startswith(path) for path in writable)]


# --- 2. passwords reach PostgreSQL only as SCRAM verifiers ---------------------------

def app_psql(host, sql: str, port: int = 6432, user: str = "app",
             password_var: str = "postgresql_app_password"):
    password = inventory_vars()[password_var]
    return host.run("PGPASSWORD=%s psql -XAtq -h 127.0.0.1 -p %s -U %s -d app -c %s",
                    password, str(port), user, sql)


def test_no_secret_in_pg_stat_statements_the_server_log_or_pg_authid(host):
    # Read everything and search here: a secret in a command line would land in the journal.
    statements = psql(host, "SELECT string_agg(query, E'\\n') FROM pg_stat_statements", db="app")
    verifiers = psql(host, "SELECT string_agg(rolname || ' ' || rolpassword, E'\\n') "
                           "FROM pg_authid WHERE rolpassword IS NOT NULL").splitlines()
    server_log = host.check_output("cat /var/log/postgresql/*.log")
    for name, secret in secrets().items():
        assert secret not in statements, f"{name} in pg_stat_statements"
        assert not [v for v in verifiers if secret in v], f"{name} in pg_authid"
        assert secret not in server_log, f"{name} in the server log"
    assert verifiers
    assert [v for v in verifiers if " SCRAM-SHA-256$" not in v] == []
    password_statements = psql(
        host, "SELECT count(*) FROM pg_stat_statements "
              "WHERE query ~* '\\m(create|alter)\\s+(user|role)\\M.*\\mpassword\\M'", db="app")
    assert password_statements == "0"


def test_app_role_has_no_monitoring_privileges(host):
    for role in ("pg_read_all_stats", "pg_monitor", "pg_read_all_settings"):
        assert psql(host, f"SELECT pg_has_role('app', '{role}', 'MEMBER')") == "f", role
    # As the app, through PgBouncer (SCRAM pass-through): other roles' statements stay hidden.
    psql(host, "SELECT count(*) FROM pg_stat_statements", db="app")   # one by postgres, at least
    hidden = app_psql(host, "SELECT DISTINCT query FROM pg_stat_statements WHERE userid <> "
                            "(SELECT oid FROM pg_roles WHERE rolname = current_user)")
    assert hidden.rc == 0, hidden.stderr
    assert hidden.stdout.splitlines() == ["<insufficient privilege>"]


def test_the_monitoring_role_reads_every_statement(host):
    assert psql(host, "SELECT pg_has_role('stacktune_monitor', 'pg_monitor', 'MEMBER')") == "t"
    seen = app_psql(host, "SELECT count(*) FROM pg_stat_statements "
                          "WHERE query = '<insufficient privilege>'",
                    port=5432, user="stacktune_monitor", password_var="postgresql_monitor_password")
    assert seen.rc == 0, seen.stderr
    assert seen.stdout.strip() == "0"


def test_a_second_run_leaves_the_verifiers_alone(host, converge_samples):
    """The converges of converge_samples (an override run, then a plain re-run of site.yml)
    keep every SCRAM verifier: re-running never re-hashes a password."""
    assert converge_samples["verifiers_before"].count("SCRAM-SHA-256$") >= 2
    assert converge_samples["verifiers_after"] == converge_samples["verifiers_before"]
    assert app_psql(host, "SELECT current_user").stdout.strip() == "app"


# --- 4. PgBouncer cannot be blocked without a password -------------------------------

HOLD_SOCKETS = r"""
import socket, sys, time
count, wait = int(sys.argv[1]), float(sys.argv[2])
sockets = [socket.create_connection(("127.0.0.1", 6432)) for _ in range(count)]
print("open", flush=True)
time.sleep(wait)
def closed(s):
    # PgBouncer sends its login-timeout error, then closes: read to the end.
    s.settimeout(1)
    try:
        while s.recv(4096):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True
print(sum(closed(s) for s in sockets), flush=True)
"""


def test_idle_sockets_do_not_block_the_app_and_are_dropped(host, plan):
    pgbouncer = plan.services["pgbouncer"]
    login_timeout = int(pgbouncer.get("client_login_timeout", "60"))   # 60: PgBouncer's default
    out = "/tmp/stacktune-hold.out"
    # An unprivileged local user, no password: raw TCP connections that never log in.
    host.check_output("rm -f %s; nohup runuser -u nobody -- python3 -c %s %s %s > %s 2>&1 &",
                      out, HOLD_SOCKETS, str(IDLE_SOCKETS), str(login_timeout + 5), out)
    started = time.monotonic()
    time.sleep(1)
    assert host.file(out).content_string.startswith("open")
    # New workers need new server connections, as after a deploy.
    host.check_output("systemctl reload stacktune-gunicorn")
    time.sleep(3)
    statuses = [http_get(host, f"http://127.0.0.1:8000/api/articles/?page={page}",
                         {"X-Forwarded-Proto": "https"})[0] for page in range(1, 11)]
    assert statuses == [200] * 10
    time.sleep(max(0.0, login_timeout + 8 - (time.monotonic() - started)))
    assert host.file(out).content_string.split() == ["open", str(IDLE_SOCKETS)]
    assert "client_login_timeout" in pgbouncer, "the plan bounds no login time"


# --- 8. only the proxy decides the scheme ---------------------------------------------

REQUEST_FROM = r"""
import http.client, sys
connection = http.client.HTTPConnection("127.0.0.1", 8000, source_address=(sys.argv[1], 0),
                                        timeout=30)
connection.request("GET", "/", headers={"X-Forwarded-Proto": "https", "Host": "localhost"})
response = connection.getresponse()
print(response.status, response.getheader("Location", ""))
"""


@pytest.mark.parametrize(("peer", "expected"), [
    ("127.0.0.1", "200"),                                   # the trusted proxy's address
    ("127.0.0.2", "301 https://localhost/"),                # anyone else: plain http, redirected
])
def test_forwarded_proto_counts_only_from_the_trusted_proxy(host, peer, expected):
    result = host.check_output("python3 -c %s %s", REQUEST_FROM, peer).strip()
    assert result == expected


def test_gunicorn_listens_on_loopback_only(host):
    listening = host.check_output("ss -Hltn 'sport = :8000'")
    addresses = {line.split()[3] for line in listening.splitlines()}
    assert addresses == {"127.0.0.1:8000"}


# --- 9. Redis ACL, value caps, DisallowedHost, data checksums -------------------------

def app_redis(host, *args: str, stdin_file: str | None = None):
    password = inventory_vars()["redis_app_password"]
    command = "REDISCLI_AUTH=%s redis-cli --user app " + " ".join(["%s"] * len(args))
    if stdin_file:
        command += f" < {stdin_file}"
    return host.run(command, password, *args)


@pytest.mark.parametrize("command", [
    ("SCAN", "0"), ("KEYS", "*"), ("RANDOMKEY",), ("SCRIPT", "FLUSH"), ("FUNCTION", "FLUSH"),
    ("FUNCTION", "DELETE", "x"), ("EVAL", "return redis.call('get', KEYS[1])", "1", "stacktune:x"),
    ("FLUSHALL",), ("CONFIG", "GET", "maxmemory"),
])
def test_app_cache_user_cannot_list_keys_or_run_server_wide_commands(host, command):
    result = app_redis(host, *command)
    assert "NOPERM" in result.stdout + result.stderr, result.stdout


def test_app_cache_user_keeps_what_django_needs(host):
    script = ("SET stacktune:t:a 1 EX 60\nINCRBY stacktune:t:a 2\nEXPIRE stacktune:t:a 30\n"
              "MGET stacktune:t:a stacktune:t:b\nSET stacktune:t:b x NX\nEXISTS stacktune:t:b\n"
              "TTL stacktune:t:a\nMULTI\nSET stacktune:t:c 1\nEXEC\n"
              "DEL stacktune:t:a stacktune:t:b stacktune:t:c\n")
    host.check_output("printf %s > /tmp/stacktune-cache-cmds", script)
    result = app_redis(host, stdin_file="/tmp/stacktune-cache-cmds")
    assert "NOPERM" not in result.stdout, result.stdout
    assert "ERR" not in result.stdout, result.stdout
    assert result.stdout.split("\n")[:4] == ["OK", "3", "1", "3"]


PUSH_VALUE = r"""
import os, socket, sys
size, chunk = int(sys.argv[1]), b"x" * 1024**2
connection = socket.create_connection(("127.0.0.1", 6379))
user, password = b"app", os.environ["STACKTUNE_PASSWORD"].encode()
connection.sendall(b"*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                   % (len(user), user, len(password), password))
assert connection.recv(100).startswith(b"+OK"), "AUTH failed"
key = b"stacktune:big"
try:
    connection.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, size))
    for _ in range(size // len(chunk)):
        connection.sendall(chunk)
    connection.sendall(b"x" * (size % len(chunk)) + b"\r\n")
    print(connection.recv(200).decode().strip())
except OSError as error:
    print("dropped:", type(error).__name__, connection.recv(200).decode().strip())
"""


def test_a_value_larger_than_the_cap_is_refused(host, plan):
    redis = plan.services["redis"]
    # Without a planned cap: the 400 MB value that pushed Redis to 500 MB against 221 MB.
    cap = parse_redis_memory(redis.get("proto-max-bulk-len", "399mb"))
    maxmemory = parse_redis_memory(redis["maxmemory"])
    password = inventory_vars()["redis_app_password"]

    def memory(field: str) -> int:
        info = host.check_output("REDISCLI_AUTH=%s redis-cli --user stacktune_admin INFO memory",
                                 inventory_vars()["redis_admin_password"])
        return int(next(line.split(":")[1] for line in info.splitlines()
                        if line.startswith(f"{field}:")))

    peak_before = memory("used_memory_peak")
    try:
        result = host.check_output("STACKTUNE_PASSWORD=%s python3 -c %s %s", password, PUSH_VALUE,
                                   str(cap + 1024**2))
        used, peak = memory("used_memory"), memory("used_memory_peak")
    finally:
        host.run("REDISCLI_AUTH=%s redis-cli --user stacktune_admin DEL stacktune:big",
                 inventory_vars()["redis_admin_password"])
    assert result != "+OK", f"a {cap + 1024**2} byte value was stored"
    assert used <= maxmemory * 1.1, f"used_memory {used} against maxmemory {maxmemory}"
    # While the value arrived: Redis buffered it whole before refusing it (OOM) without a cap.
    assert peak <= max(peak_before, maxmemory * 1.1), f"peak {peak}, maxmemory {maxmemory}"
    assert "proto-max-bulk-len" in redis, "the plan caps no Redis value size (proto-max-bulk-len)"


def test_a_bad_host_header_logs_one_line(host):
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    time.sleep(1)
    status, _ = http_get(host, "http://127.0.0.1:8000/", {"Host": "attacker.example",
                                                          "X-Forwarded-Proto": "https"})
    assert status == 400
    time.sleep(1)
    log = host.check_output("journalctl --no-pager -o cat -u stacktune-gunicorn --since %s", since)
    lines = [line for line in log.splitlines() if line.strip()]
    assert len(lines) == 1, log
    assert "WARNING" in lines[0] and "attacker.example" in lines[0]
    assert "Traceback" not in log


def test_new_clusters_have_data_checksums(host):
    assert psql(host, "SHOW data_checksums") == "on"


def test_secrets_listing_is_not_empty():
    # Guards the scans above: they would pass vacuously without secrets to look for.
    assert len(secrets()) >= 6, json.dumps(sorted(secrets()))
