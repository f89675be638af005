"""Operating the converged cluster: --limit plans and renders what a full run does; --check
reports pending migrations; app deploys roll one batch at a time behind nginx (each host
whose deploy changed drained, restarted, put back; no request fails), drain nothing on a run
that changes nothing or in a batch of every app host, and stop at a failed host, which stays
out of the upstream until a good run puts it back."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from stacktune_testlib import (
    LOAD_TIMED_GET,
    REPO,
    extra_vars,
    http_get,
    recap_is_clean,
    run_playbook,
    start_load_unit,
    stop_load_unit,
)

SETTINGS = "/srv/app/src/demo_site/stacktune_settings.py"
# Task headers name the role by its collection name.
MIGRATE_TASK = (r"TASK \[stacktune\.stacktune\.django_settings : "
                r"Migrate and load data \(first app host\)")
APP_PLAY = "PLAY [App tier - the Django app under Gunicorn, one batch at a time]"
DRAIN_HANDLER = "RUNNING HANDLER [Take this host out of nginx's upstream before Gunicorn reloads]"
GUNICORN_HANDLER = re.compile(
    r"RUNNING HANDLER \[stacktune\.stacktune\.gunicorn : (?:Reload|Restart) Gunicorn\]")
APPS = ("stacktune-app1", "stacktune-app2")
# nginx in front of both app hosts runs on the cache host.
PROXY = "stacktune-cache"
NGINX_CONF = "/etc/nginx/nginx.conf"
ACCESS_LOG = "/var/log/nginx/access.log"
ERROR_LOG = "/var/log/nginx/error.log"
LOAD_UNIT = "stacktune-roll-load"
LOAD_STOP = "/run/stacktune-roll-load.stop"
LOAD_RESULT = "/run/stacktune-roll-load.json"
# HTTP load through nginx, from the proxy host, until LOAD_STOP exists: a minimal copy of
# test_zero_downtime.py's generator (HTTP only). Writes every request's status to LOAD_RESULT.
LOAD_SCRIPT = r"""
import json, os, ssl, sys, threading, time, urllib.error, urllib.request
""" + LOAD_TIMED_GET + r"""
cfg = json.loads(sys.argv[1])
tls = ssl._create_unverified_context()
lock = threading.Lock()
requests = []
def worker(index):
    n = index
    while not os.path.exists(cfg["stop"]):
        path = cfg["paths"][n % len(cfg["paths"])]
        n += 1
        started = time.time()
        status = timed_get(cfg["url"] + path, 60, context=tls)[2]
        with lock:
            requests.append([round(started, 2), path, status])
        time.sleep(0.02)
threads = [threading.Thread(target=worker, args=(i,)) for i in range(cfg["threads"])]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with open(cfg["result"], "w") as out:
    json.dump(requests, out)
"""


def manage(host, *args: str) -> str:
    """manage.py as the app user, as the roles run it."""
    result = host.run("cd /srv/app/src && runuser -u app -- /srv/app/venv/bin/python manage.py"
                      + " %s" * len(args), *args)
    assert result.rc == 0, result.stdout + result.stderr
    return result.stdout


def app_state(host) -> dict:
    """What a deploy changes on an app host: the settings file, Gunicorn's master and workers."""
    master = host.check_output("systemctl show --property=MainPID --value stacktune-gunicorn")
    workers = sorted(host.check_output("pgrep -P %s", master).split())
    return {"settings_sha256": host.check_output("sha256sum %s", SETTINGS).split()[0],
            "master": master, "workers": workers}


def healthz(host) -> dict:
    status, body = http_get(host, "http://127.0.0.1:8000/healthz")
    return {"http": status, **json.loads(body)}


LOAD_CFG = {"url": "https://localhost", "paths": ["/?page=2", "/healthz"], "threads": 4,
            "stop": LOAD_STOP, "result": LOAD_RESULT}


def upstream_log(proxy, first_line: int) -> list[tuple[float, str]]:
    """(time, upstream) of each request nginx logged from first_line on (log_format stacktune)."""
    lines = proxy.check_output("tail -n +%s %s", str(first_line), ACCESS_LOG).splitlines()
    entries = []
    for line in lines:
        match = re.search(r"\[(\S+) ([+-]\d{4})\] .* upstream=(.*?) rt=", line)
        if match:
            stamp = datetime.strptime(f"{match[1]} {match[2]}", "%d/%b/%Y:%H:%M:%S %z")
            entries.append((stamp.timestamp(), match[3]))
    return entries


def master_start(host) -> float:
    """When Gunicorn's master started: the restart of a drained host's deploy. (Not a
    worker's start: max_requests recycles workers at any time.)"""
    master = host.check_output("systemctl show --property=MainPID --value stacktune-gunicorn")
    start = host.check_output("ps -o lstart= -p %s", master).strip()
    zone = host.check_output("date +%z")
    return datetime.strptime(f"{start} {zone}", "%a %b %d %H:%M:%S %Y %z").timestamp()


def nginx_state(proxy) -> dict:
    """What a drain or an undrain changes on a proxy: nginx.conf, and nginx's workers (a
    reload starts new ones under the same master)."""
    master = proxy.check_output("systemctl show --property=MainPID --value nginx")
    return {"conf_mtime": proxy.check_output("stat -c %%Y %s", NGINX_CONF),
            "master": master, "workers": sorted(proxy.check_output("pgrep -P %s", master).split())}


def drained_addresses(proxy) -> set[str]:
    """The upstream servers nginx.conf marks down now."""
    conf = proxy.check_output("cat %s", NGINX_CONF)
    return set(re.findall(r"^\s*server (\S+) [^;]*\bdown;$", conf, re.MULTILINE))


def run_with(inventory: Path, *args: str, playbook: str) -> subprocess.CompletedProcess:
    """ansible-playbook from the repository root against a given inventory directory."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(["ansible-playbook", "-i", str(inventory), playbook, *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=1200, check=False)


def printed_diff(output: str) -> list[str]:
    """The diff lines --diff printed for rendered files."""
    return [line for line in output.splitlines() if re.match(r"^(\+\+\+|---) (before|after)", line)]


def app_play_batches(output: str) -> list[set[str]]:
    """The hosts each batch of the rolling app play ran tasks on, in order."""
    batches = []
    for part in output.split(APP_PLAY)[1:]:
        part = part.split("PLAY RECAP")[0].split("\nPLAY [")[0]
        batches.append(set(re.findall(
            r"^(?:ok|changed|fatal|failed|skipping): \[(stacktune-[a-z0-9]+)", part, re.MULTILINE)))
    return batches


# --limit: the plan is the whole inventory's, so a limited --check on the converged
# cluster finds every rendered file as it is (the monitoring host's scrape targets and the
# exporters' firewalls included: they name hosts outside the limit).

@pytest.mark.parametrize("limit", ["stacktune-db", "stacktune-app1", "stacktune-cache"])
def test_a_limited_check_renders_the_same_files(limit):
    result = run_playbook("--check", "--diff", "--limit", limit)
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap_is_clean(result.stdout), result.stdout[-2500:]
    assert printed_diff(result.stdout) == [], result.stdout[-3000:]
    # The limit held: only the limited host's tiers ran.
    recap = result.stdout[result.stdout.rindex("PLAY RECAP"):]
    assert limit in recap


def test_a_limited_check_shows_a_plan_that_differs():
    """The check above sees a difference: a plan that changed shows as a diff under --limit."""
    result = run_playbook("--check", "--diff", "--limit", "stacktune-db",
                          *extra_vars(stacktune_overrides={"postgresql": {"work_mem": "3MB"}}))
    assert result.returncode == 0, result.stdout[-3000:]
    assert not recap_is_clean(result.stdout)
    assert printed_diff(result.stdout), result.stdout[-3000:]
    assert re.search(r"^\+work_mem = '3MB'", result.stdout, re.MULTILINE), result.stdout[-3000:]


# --check reports the migrations a run would apply.

def test_check_reports_a_pending_migration(nodes):
    app1 = nodes["stacktune-app1"]
    assert "[ ]" not in manage(app1, "showmigrations", "--plan")
    manage(app1, "migrate", "sessions", "zero")
    try:
        result = run_playbook("--check", "--diff", playbook="playbooks/app.yml")
        assert result.returncode == 0, result.stdout[-3000:]
        assert "Pending migrations, applied by a run: sessions.0001_initial" in result.stdout, (
            result.stdout[-3000:])
        recap = result.stdout[result.stdout.rindex("PLAY RECAP"):]
        assert re.search(r"stacktune-app1 +: ok=\d+ +changed=1 ", recap), recap
        assert re.search(r"stacktune-app2 +: ok=\d+ +changed=0 ", recap), recap
        assert "sessions.0001_initial" in manage(app1, "showmigrations", "--plan").split("[ ]")[1]
    finally:
        manage(app1, "migrate", "sessions")
    assert "[ ]" not in manage(app1, "showmigrations", "--plan")
    clean = run_playbook("--check", playbook="playbooks/app.yml")
    assert "No pending migrations" in clean.stdout, clean.stdout[-3000:]
    assert recap_is_clean(clean.stdout), clean.stdout[-2500:]


def test_a_run_that_changes_nothing_drains_nothing(nodes):
    """With the drain on (the default), a run that changes nothing on the converged cluster
    marks no host down and leaves nginx's configuration and workers as they were."""
    proxy = nodes[PROXY]
    before = nginx_state(proxy)
    result = run_playbook("-e", "stacktune_app_drain=true", playbook="playbooks/app.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap_is_clean(result.stdout), result.stdout[-2500:]
    assert DRAIN_HANDLER not in result.stdout
    assert nginx_state(proxy) == before
    assert drained_addresses(proxy) == set()


def test_a_run_puts_back_a_host_left_down(nodes):
    """A host an earlier run left `down` (its deploy failed) is put back by the next run
    once healthy, even when that run changes nothing on it (no drain, no restart)."""
    app1, proxy = nodes["stacktune-app1"], nodes[PROXY]
    app1_address = proxy.check_output("getent ahostsv4 stacktune-app1").split()[0] + ":8000"
    proxy.check_output("sed -i -E %s %s",
                       rf"s/^(\s*server {re.escape(app1_address)} [^;]*);$/\1 down;/", NGINX_CONF)
    proxy.check_output("nginx -t -q && systemctl reload nginx")
    assert drained_addresses(proxy) == {app1_address}
    app1_master = app_state(app1)["master"]
    result = run_playbook(playbook="playbooks/app.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert drained_addresses(proxy) == set()
    assert DRAIN_HANDLER not in result.stdout
    assert app_state(app1)["master"] == app1_master
    recap = result.stdout[result.stdout.rindex("PLAY RECAP"):]
    assert re.search(r"stacktune-app1 +: ok=\d+ +changed=[1-9]", recap), recap
    assert re.search(r"stacktune-app2 +: ok=\d+ +changed=0 ", recap), recap


# Rolling deploys. Each run changes ALLOWED_HOSTS on every app host, so every batch has
# something to deploy; the last test puts the inventory's settings back.

@pytest.fixture(scope="module")
def fault_on_app1(tmp_path_factory) -> Path:
    """The scenario's inventory with a wrong cache password for app1 only: app1's health
    check reports the cache degraded after its deploy."""
    inventory = tmp_path_factory.mktemp("fault") / "inventory"
    shutil.copytree(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent, inventory)
    (inventory / "host_vars").mkdir(exist_ok=True)
    (inventory / "host_vars" / "stacktune-app1.yml").write_text(
        "django_settings_cache_password: not-the-cache-password\n")
    return inventory


def test_a_failed_health_check_stops_the_roll_with_app2_untouched(nodes, fault_on_app1):
    """Under continuous HTTP load through nginx, with the default drain: app1 fails its
    health check after its restart; it stays out of the upstream, app2 keeps its Gunicorn
    and serves every request."""
    app1, app2 = nodes["stacktune-app1"], nodes["stacktune-app2"]
    proxy = nodes[PROXY]
    assert healthz(app1)["status"] == healthz(app2)["status"] == "ok"
    app2_before = app_state(app2)
    start_load_unit(proxy, LOAD_UNIT, LOAD_SCRIPT, LOAD_CFG)
    try:
        time.sleep(3)
        # gunicorn_health_timeout: the cache does not come back; no need to wait a minute.
        result = run_with(
            fault_on_app1, "-e", "stacktune_app_batch=1", "-e", "gunicorn_health_timeout=10",
            *extra_vars(
                django_settings_allowed_hosts=["localhost", "127.0.0.1", "roll-fault.test"]),
            playbook="playbooks/app.yml")
        time.sleep(3)
    finally:
        requests = stop_load_unit(proxy, LOAD_UNIT, LOAD_CFG, wait_seconds=120)
    assert result.returncode != 0, result.stdout[-3000:]
    # The site kept serving, from app2, through the whole failed roll.
    failed = [r for r in requests if r[2] != 200]
    assert len(requests) > 20 and failed == [], (len(requests), failed[:10])
    # The roll stopped at app1's health check: the first batch, app1 alone, failed there.
    batches = app_play_batches(result.stdout)
    assert batches == [{"stacktune-app1"}], (batches, result.stdout[-3000:])
    before_failure = result.stdout[:result.stdout.index("fatal: [stacktune-app1]")]
    failed_task = before_failure.rsplit("TASK [", 1)[1]
    assert failed_task.startswith(
        "stacktune.stacktune.gunicorn : Check that the app answers healthy through its "
        "bind"), result.stdout[-3000:]
    assert "roll-fault.test" in app1.check_output("cat %s", SETTINGS)
    assert healthz(app1) == {"http": 200, "status": "degraded", "database": "ok",
                             "cache": "degraded"}
    # app1 stays out of nginx's upstream, and the roll says so.
    proxy = nodes[PROXY]
    app1_address = proxy.check_output("getent ahostsv4 stacktune-app1").split()[0] + ":8000"
    assert drained_addresses(proxy) == {app1_address}
    assert "It stays out of the nginx upstream on stacktune-cache" in " ".join(
        result.stdout.split()), result.stdout[-3000:]
    # app2 kept its settings file and its Gunicorn master (workers recycle under load:
    # max_requests), and serves.
    app2_after = app_state(app2)
    assert (app2_after["settings_sha256"], app2_after["master"]) == (
        app2_before["settings_sha256"], app2_before["master"])
    assert "roll-fault.test" not in app2.check_output("cat %s", SETTINGS)
    assert healthz(app2)["status"] == "ok"


def test_a_roll_deploys_one_batch_after_the_other(nodes):
    """Under continuous HTTP load through nginx: each app host drained, restarted and put
    back in turn, and no request fails."""
    app1, app2 = nodes["stacktune-app1"], nodes["stacktune-app2"]
    proxy = nodes[PROXY]
    address = {name: proxy.check_output("getent ahostsv4 %s", name).split()[0] + ":8000"
               for name in APPS}
    # A host the fault test above left out of the upstream gets no traffic until the roll.
    serving_before = {name for name in APPS if address[name] not in drained_addresses(proxy)}
    before = {name: app_state(nodes[name]) for name in APPS}
    # A migration to apply: the roll must apply it once, from app1, in the first batch.
    manage(app1, "migrate", "sessions", "zero")
    first_access_line = int(proxy.check_output("wc -l < %s", ACCESS_LOG)) + 1
    first_error_line = int(proxy.check_output("wc -l < %s", ERROR_LOG)) + 1
    # A name new to every run: each run has a settings change to roll out.
    new_host = f"roll-pass-{int(time.time())}.test"
    start_load_unit(proxy, LOAD_UNIT, LOAD_SCRIPT, LOAD_CFG)
    try:
        time.sleep(3)
        roll_began = time.time()
        # The drain is the default.
        result = run_playbook(
            "-e", "stacktune_app_batch=1",
            *extra_vars(django_settings_allowed_hosts=["localhost", "127.0.0.1", new_host]),
            playbook="playbooks/app.yml")
        roll_ended = time.time()
        time.sleep(3)
    finally:
        requests = stop_load_unit(proxy, LOAD_UNIT, LOAD_CFG, wait_seconds=120)
    assert result.returncode == 0, result.stdout[-3000:]
    # Not one request failed, and the load ran the whole roll.
    failed = [r for r in requests if r[2] != 200]
    assert requests and failed == [], (len(requests), failed[:10])
    assert requests[0][0] < roll_began and requests[-1][0] > roll_ended
    # nginx never reached a host that was not serving: no failed connection, no retry.
    errors = proxy.check_output("tail -n +%s %s", str(first_error_line), ERROR_LOG)
    assert "upstream" not in errors, errors[-2000:]
    log = upstream_log(proxy, first_access_line)
    assert not [u for _, u in log if "," in u], [u for _, u in log if "," in u][:10]
    # While a host restarted (its new master started), nginx sent it nothing.
    deployed_at = {name: master_start(nodes[name]) for name in APPS}
    assert deployed_at["stacktune-app1"] < deployed_at["stacktune-app2"], deployed_at
    for name in APPS:
        # The log's times are whole seconds, cut down: a request logged at a second
        # after the master's start ended after it; one logged at the same second may
        # have ended just before it (the drain waited for it).
        during = [t for t, u in log if u == address[name]
                  and deployed_at[name] < t <= deployed_at[name] + 1]
        assert during == [], (name, len(during))
    # Traffic reached the serving hosts before the roll, and both after it.
    assert {n for n in APPS if any(t < roll_began and u == address[n] for t, u in log)} == (
        serving_before)
    assert {n for n in APPS if any(t > roll_ended and u == address[n] for t, u in log)} == set(APPS)
    assert drained_addresses(proxy) == set()
    assert app_play_batches(result.stdout) == [{"stacktune-app1"}, {"stacktune-app2"}]
    # In each batch the drain handler ran, before the gunicorn role's handler.
    for part in result.stdout.split(APP_PLAY)[1:]:
        assert DRAIN_HANDLER in part and GUNICORN_HANDLER.search(part), part[-2000:]
        assert part.index(DRAIN_HANDLER) < GUNICORN_HANDLER.search(part).start(), part[-2000:]
    # One migrate task per batch: app1's applied the migration (changed), app2's found
    # nothing left to apply.
    migrate_results = [re.search(r"^(changed|ok|skipping): \[(stacktune-app\d)\]", part, re.M)
                       for part in re.split(MIGRATE_TASK, result.stdout)[1:]]
    assert [m.groups() for m in migrate_results] == [
        ("changed", "stacktune-app1"), ("ok", "stacktune-app2")], result.stdout[-3000:]
    assert "[ ]" not in manage(app1, "showmigrations", "--plan")
    for host in (app1, app2):
        assert new_host in host.check_output("cat %s", SETTINGS)
        assert healthz(host) == {"http": 200, "status": "ok", "database": "ok", "cache": "ok"}
    for name in APPS:
        after = app_state(nodes[name])
        assert after["settings_sha256"] != before[name]["settings_sha256"], name
        # Restarted while drained: a new master, so every worker replaced.
        assert after["master"] != before[name]["master"], name
        assert not set(after["workers"]) & set(before[name]["workers"]), name


def test_a_batch_of_every_app_host_reloads_without_a_drain(nodes):
    """stacktune_app_batch=2 holds both app hosts: draining them would empty the upstream, so
    neither is drained (nginx.conf and nginx's workers untouched) and Gunicorn's HUP
    reload (the same master) keeps serving under load. The run puts the inventory's
    settings back."""
    proxy = nodes[PROXY]
    nginx_before = nginx_state(proxy)
    masters_before = {name: app_state(nodes[name])["master"] for name in APPS}
    start_load_unit(proxy, LOAD_UNIT, LOAD_SCRIPT, LOAD_CFG)
    try:
        time.sleep(3)
        result = run_playbook("-e", "stacktune_app_batch=2", playbook="playbooks/app.yml")
        time.sleep(3)
    finally:
        requests = stop_load_unit(proxy, LOAD_UNIT, LOAD_CFG, wait_seconds=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert app_play_batches(result.stdout) == [set(APPS)]
    # Both hosts deployed (their Gunicorn reloaded), neither drained: no `down`, no nginx
    # reload, and a HUP (the same masters), not the restart of a drained host.
    assert GUNICORN_HANDLER.search(result.stdout), result.stdout[-3000:]
    assert nginx_state(proxy) == nginx_before
    assert {name: app_state(nodes[name])["master"] for name in APPS} == masters_before
    failed = [r for r in requests if r[2] != 200]
    assert len(requests) > 20 and failed == [], (len(requests), failed[:10])
    for name in APPS:
        assert "roll-" not in nodes[name].check_output("cat %s", SETTINGS)
        assert healthz(nodes[name])["status"] == "ok"
    again = run_playbook("--check", "--diff", playbook="playbooks/app.yml")
    assert recap_is_clean(again.stdout), again.stdout[-2500:]

