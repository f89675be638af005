"""The playbooks' surface, through ansible-playbook on local hosts (no containers):
the plan under --limit, tier tags, standalone tier playbooks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
DUMP = ROOT / "tests" / "playbooks" / "plan_dump.yml"
DRAIN_DECISION = ROOT / "tests" / "playbooks" / "drain_decision.yml"

# Three tiers on four local "hosts", hardware and addresses pinned so the plan does not
# depend on this machine: database with PgBouncer, a cache host, two app hosts.
THREE_TIER = """
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{python}"
    stacktune_pg_version: 15
    gunicorn_app_src: {root}/demo
    gunicorn_wsgi_app: demo_site.wsgi:application
    gunicorn_requirements: requirements-django5.2.txt
{secrets}
  children:
    postgresql:
      hosts:
        db1: {{stacktune_memory: 8GiB, stacktune_cpus: 4, stacktune_storage: ssd,
              stacktune_address: 198.51.100.10}}
    pgbouncer:
      hosts:
        db1: {{}}
    redis:
      hosts:
        cache1: {{stacktune_memory: 2GiB, stacktune_cpus: 1, stacktune_storage: ssd,
                 stacktune_address: 198.51.100.20}}
    app:
      hosts:
        app1: {{stacktune_memory: 2GiB, stacktune_cpus: 2, stacktune_storage: ssd,
                 stacktune_address: 198.51.100.31}}
        app2: {{stacktune_memory: 2GiB, stacktune_cpus: 2, stacktune_storage: ssd,
                 stacktune_address: 198.51.100.32}}
"""


SECRETS = ("postgresql_app_password", "pgbouncer_admin_password", "pgbouncer_stats_password",
           "redis_app_password", "redis_admin_password", "django_settings_secret_key")
TEST_SECRETS = "\n".join(f"    {name}: test-only-{name}-0123456789012345678901234567890123456789"
                         for name in SECRETS)


def ansible_playbook(inventory: Path, playbook: Path | str,
                     *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    command = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(playbook), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inventory") / "hosts.yml"
    path.write_text(THREE_TIER.format(python=sys.executable, root=ROOT, secrets=TEST_SECRETS))
    return path


def plan_with(inventory: Path, tmp_path: Path, *args: str) -> dict:
    dump = tmp_path / f"plan{len(list(tmp_path.iterdir()))}.json"
    result = ansible_playbook(inventory, DUMP, "-e", f"plan_dump_path={dump}", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return json.loads(dump.read_text())


@pytest.fixture(scope="module")
def full_plan(inventory, tmp_path_factory) -> dict:
    return plan_with(inventory, tmp_path_factory.mktemp("full"))


def test_limit_does_not_change_the_plan(inventory, tmp_path, full_plan):
    """A run limited to one host plans the whole inventory: same plan, same views."""
    full = full_plan
    assert set(full["views"]) == {"db1", "cache1", "app1", "app2"}
    # The app tier's two hosts feed PgBouncer's client count: a limited run that
    # forgot them would size it for fewer (or, limited to the database, none).
    for limit in ("db1", "app1", "cache1,app2"):
        limited = plan_with(inventory, tmp_path, "--limit", limit)
        assert limited["plan"] == full["plan"], f"--limit {limit} changed the plan"
        assert limited["views"] == full["views"], f"--limit {limit} changed a host's view"


def test_groups_follow_stacktune_groups(inventory, tmp_path, full_plan):
    """Renamed inventory groups place the services for the plays as for the plan."""
    renamed = inventory.parent / "renamed.yml"
    renamed.write_text(inventory.read_text().replace("    app:\n", "    web:\n"))
    dump = plan_with(renamed, tmp_path, "-e", json.dumps(
        {"stacktune_groups": {"postgresql": "postgresql", "pgbouncer": "pgbouncer",
                              "redis": "redis", "gunicorn": "web"}}))
    # group_by adds hosts as they finish the task: compare membership, not order.
    assert sorted(dump["groups"]["stacktune_gunicorn"]) == ["app1", "app2"]
    assert dump["groups"]["stacktune_postgresql"] == ["db1"]
    assert dump["plan"] == full_plan["plan"]
    # The plan's result names each service's group, defaults filled in, for later plays.
    assert dump["placement"] == {"postgresql": "postgresql", "pgbouncer": "pgbouncer",
                                 "redis": "redis", "gunicorn": "web", "nginx": "proxy",
                                 "postgresql_replica": "postgresql_replica"}


def test_site_plans_once(inventory):
    """site.yml imports the plan play once per tier: only the first runs its tasks."""
    # No tier play has this tag; the plan plays are tagged always.
    result = ansible_playbook(inventory, ROOT / "site.yml", "--tags", "no-such-tag")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    out = result.stdout
    plays = out.count("PLAY [Inspect every host and plan the stack]")
    assert plays == 8, out[-3000:]
    assert out.count("TASK [Gather the facts of every host (once per run)]") == 1, out[-3000:]
    skipped = re.findall(r"PLAY \[Inspect every host and plan the stack\] \**\n"
                         r"skipping: no hosts matched", out)
    assert len(skipped) == plays - 1, out[-3000:]
    assert "stacktune_planned" not in result.stderr


def plays_and_tasks(listing: str) -> list[tuple[str, list[str]]]:
    """`ansible-playbook --list-tasks` output as (play name, its task lines), in order."""
    plays: list[tuple[str, list[str]]] = []
    for line in listing.splitlines():
        header = re.match(r"\s+play #\d+ \([^)]*\): (.*?)\tTAGS", line)
        if header:
            plays.append((header.group(1), []))
        elif plays and line.strip():
            plays[-1][1].append(line.strip())
    return plays


def test_the_package_index_is_refreshed_by_one_play_before_the_tiers():
    """No tier play runs package_index (as a dependency of each service role it ran, its
    argument check included, in every tier's play: 15 tasks a re-run): the package-index
    play does, after the plan, in every tier playbook, so each still runs alone."""
    listing = subprocess.run([ANSIBLE_PLAYBOOK, "site.yml", "--list-tasks"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    index_play = "Refresh the package index when it is missing or old (once per run)"
    running = [name for name, tasks in plays_and_tasks(listing)
               if any("package_index" in task or "package index" in task for task in tasks)]
    assert running and set(running) == {index_play}, running
    for tier in ("postgresql", "pgbouncer", "redis", "app", "nginx", "monitoring"):
        tier_listing = subprocess.run([ANSIBLE_PLAYBOOK, f"playbooks/{tier}.yml", "--list-tasks"],
                                      cwd=ROOT, capture_output=True, text=True, check=True).stdout
        names = [name for name, _ in plays_and_tasks(tier_listing)]
        assert names[:2] == ["Inspect every host and plan the stack", index_play], (tier, names)


def test_the_package_index_play_runs_once_per_run(inventory):
    """A real run: the play's second copy (a later tier's import) matches no host, and the
    first reads each placed host's index once (fresh here: no apt call)."""
    result = ansible_playbook(inventory, ROOT / "tests" / "playbooks" / "package_index_twice.yml",
                              "-e", '{"stacktune_apt_lists_age_seconds": 0}')
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    out = result.stdout
    first, second = out.split("PLAY [Refresh the package index when it is missing or old")[1:]
    refresh = "TASK [stacktune.stacktune.package_index : Refresh the package index"
    assert first.count(refresh) == 1, first
    refresh_results = first.split(refresh)[1].split("TASK [")[0]
    assert len(re.findall(r"skipping: \[(db1|cache1|app1|app2)\]", refresh_results)) == 4, first
    assert "skipping: no hosts matched" in second.split("PLAY RECAP")[0], second


def test_unreachable_host_outside_the_limit_refuses_the_run(inventory, tmp_path):
    """No profile for a placed host: the run stops at inspection, before any change."""
    broken = inventory.parent / "broken.yml"
    broken.write_text(inventory.read_text().replace(
        "cache1: {stacktune_memory: 2GiB",
        "cache1: {ansible_connection: ssh, ansible_host: 127.0.0.1, ansible_port: 1, "
        "stacktune_memory: 2GiB"))
    result = ansible_playbook(broken, DUMP, "-e", f"plan_dump_path={tmp_path}/x.json",
                              "--limit", "db1")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "Inspect the placed hosts outside --limit" in out and "cache1" in out, out[-3000:]
    assert not (tmp_path / "x.json").exists()


def test_each_tier_has_a_tag_and_runs_alone():
    """--list-tags shows one tag per tier; each tier playbook plans first."""
    out = subprocess.run([ANSIBLE_PLAYBOOK, "site.yml", "--list-tags"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    tags = set()
    for line in out.splitlines():
        if "TASK TAGS:" in line:
            tags |= {t.strip() for t in line.split("[", 1)[1].rstrip("]").split(",")}
    assert {"postgresql", "pgbouncer", "redis", "app", "host"} <= tags
    for tier in ("postgresql", "pgbouncer", "redis", "app", "host"):
        plays = subprocess.run([ANSIBLE_PLAYBOOK, f"playbooks/{tier}.yml", "--list-tasks"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout
        first_play = plays.split("play #2")[0]
        assert "Inspect every host and plan the stack" in first_play, tier


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("redis_port", "not-a-port", "redis_port"),
    ("redis_firewall", "maybe", "redis_firewall"),
    ("postgresql_port", "5432x", "postgresql_port"),
    ("django_settings_migrate", "sometimes", "django_settings_migrate"),
])
def test_a_later_tier_variable_is_rejected_in_the_plan_play(inventory, tmp_path, variable,
                                                             value, message):
    """A bad value for any tier's role fails the plan play, before the first tier runs."""
    dump = tmp_path / "plan.json"
    result = ansible_playbook(inventory, DUMP, "-e", f"plan_dump_path={dump}",
                              "-e", json.dumps({variable: value}))
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "Check the variables of every role this host will run" in out, out[-3000:]
    assert message in out, out[-3000:]
    assert not dump.exists()


@pytest.mark.parametrize(("value", "message"), [
    ({"stacktune_app_drain": "maybe"}, "stacktune_app_drain"),
    ({"stacktune_app_batch": 0}, "stacktune_app_batch is \"0\": give a count of app hosts"),
    ({"stacktune_app_batch": "two"}, "stacktune_app_batch is \"two\": give a count of app hosts"),
    ({"stacktune_app_batch": "0%"}, "stacktune_app_batch is \"0%\": give a count of app hosts"),
])
def test_a_bad_rolling_deploy_setting_is_rejected_in_the_plan_play(inventory, tmp_path, value,
                                                                   message):
    """The app play's switches fail the plan play by name, not the roll after the database tiers."""
    dump = tmp_path / "plan.json"
    result = ansible_playbook(inventory, DUMP, "-e", f"plan_dump_path={dump}",
                              "-e", json.dumps(value))
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert message in out, out[-3000:]
    assert not dump.exists()


@pytest.mark.parametrize("value", [{"stacktune_app_batch": "34%"}, {"stacktune_app_batch": 2},
                                   {"stacktune_app_drain": "false"}])
def test_a_good_rolling_deploy_setting_plans(inventory, tmp_path, value):
    dump = tmp_path / "plan.json"
    result = ansible_playbook(inventory, DUMP, "-e", f"plan_dump_path={dump}",
                              "-e", json.dumps(value))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert dump.exists()


def vaulted_inventory(tmp_path: Path) -> Path:
    """A copy of the shipped three-tier inventory (its group_vars as they are) on local hosts."""
    import shutil

    inventory = tmp_path / "production"
    shutil.copytree(ROOT / "inventory" / "three-tier", inventory, symlinks=False)
    (inventory / "hosts.yml").write_text(
        THREE_TIER.format(python=sys.executable, root=ROOT, secrets=""))
    return inventory


def test_vaulted_secrets_reach_the_roles(tmp_path):
    """scripts/new-vault makes an encrypted vault.yml that the shipped group_vars read."""
    inventory = vaulted_inventory(tmp_path)
    password = tmp_path / "vault-pass"
    password.write_text("test-only-vault-password\n")
    made = subprocess.run([sys.executable, str(ROOT / "scripts" / "new-vault"), str(inventory),
                           "--vault-id", f"prod@{password}"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    vault = inventory / "group_vars" / "all" / "vault.yml"
    assert vault.read_text().startswith("$ANSIBLE_VAULT;1.2;AES256;prod")
    assert vault.stat().st_mode & 0o077 == 0
    plain = subprocess.run([ANSIBLE_PLAYBOOK.replace("ansible-playbook", "ansible-vault"), "view",
                            "--vault-id", f"prod@{password}", str(vault)],
                           capture_output=True, text=True, check=True).stdout
    values = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in plain.splitlines()
              if line.startswith("vault_")}
    optional = ("postgresql_monitor_password", "redis_monitor_password",
                "postgresql_replication_password")
    assert set(values) == {f"vault_{name}" for name in (*SECRETS, *optional)}
    assert len(values["vault_django_settings_secret_key"]) >= 50

    dump = tmp_path / "plan.json"
    result = ansible_playbook(inventory, DUMP, "-e", f"plan_dump_path={dump}",
                              "-e", "dump_secret_hashes=true", "--vault-id", f"prod@{password}")
    assert result.returncode == 0, result.stdout[-3000:]
    import hashlib

    hashes = json.loads(dump.read_text())["secret_hashes"]
    for name in SECRETS:
        expected = hashlib.sha256(values[f"vault_{name}"].encode()).hexdigest()
        assert hashes[name] == expected, name
    for value in values.values():
        assert value not in result.stdout


def test_a_missing_secret_names_the_variable_and_the_fix(tmp_path):
    """No vault.yml: the plan play stops, naming the secret and how to make it."""
    inventory = vaulted_inventory(tmp_path)
    dump = tmp_path / "plan.json"
    result = ansible_playbook(inventory, DUMP, "-e", f"plan_dump_path={dump}")
    assert result.returncode != 0
    assert "postgresql_app_password is not set for db1" in result.stdout, result.stdout[-3000:]
    assert "scripts/new-vault" in result.stdout
    assert not dump.exists()


ADDRESSES_DUMP = ROOT / "tests" / "playbooks" / "addresses_dump.yml"


def local_ipv4_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses, as Ansible's network facts list them."""
    out = subprocess.run([ANSIBLE_PLAYBOOK.replace("ansible-playbook", "ansible"), "localhost",
                          "-m", "ansible.builtin.setup", "-a", "gather_subset=network",
                          "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"],
                         capture_output=True, text=True, check=True).stdout
    import yaml

    facts = yaml.safe_load(out.split("=>", 1)[1])["ansible_facts"]
    return [a for a in facts["ansible_all_ipv4_addresses"] if not a.startswith("127.")]


def test_each_tier_uses_the_hosts_stacktune_address(inventory, tmp_path):
    """PgBouncer, Redis, their firewalls and Django read the inventory's stacktune_address."""
    dump = tmp_path / "addresses.json"
    result = ansible_playbook(inventory, ADDRESSES_DUMP, "-e", f"addresses_dump_path={dump}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    views = json.loads(dump.read_text())
    assert {host: view["stacktune_address"] for host, view in views.items()} == {
        "db1": "198.51.100.10", "cache1": "198.51.100.20",
        "app1": "198.51.100.31", "app2": "198.51.100.32"}
    assert views["db1"]["view_pgbouncer"] == {
        "listen_addr": "127.0.0.1,198.51.100.10",
        "app_networks": ["198.51.100.31/32", "198.51.100.32/32"],
        "server_host": "127.0.0.1"}
    assert views["cache1"]["view_redis"] == {
        "bind": "127.0.0.1 -::1 198.51.100.20",
        "firewall_allowed": ["198.51.100.31", "198.51.100.32"]}
    for app in ("app1", "app2"):
        assert views[app]["view_django"] == {"db_host": "198.51.100.10",
                                             "cache_host": "198.51.100.20"}


def test_a_multi_homed_host_without_stacktune_address_stops_the_plan(inventory, tmp_path):
    """No address is guessed among several: the plan play names the variable and the fix."""
    addresses = local_ipv4_addresses()
    if len(addresses) < 2:
        pytest.skip(f"this machine has {len(addresses)} non-loopback IPv4 address(es); "
                    "the local hosts are not multi-homed")
    unset = inventory.parent / "no-address.yml"
    unset.write_text(inventory.read_text().replace(",\n                 stacktune_address: "
                                                   "198.51.100.20", ""))
    assert "198.51.100.20" not in unset.read_text()
    dump = tmp_path / "addresses.json"
    result = ansible_playbook(unset, ADDRESSES_DUMP, "-e", f"addresses_dump_path={dump}")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "Choose each placed host's address (stacktune_address)" in out, out[-3000:]
    assert "stacktune_address is not set for cache1" in out, out[-3000:]
    assert "host_vars/cache1.yml" in out
    for address in addresses:
        assert address in out
    assert not dump.exists()


def test_a_stacktune_address_that_is_not_an_address_is_refused(inventory, tmp_path):
    bad = inventory.parent / "bad-address.yml"
    bad.write_text(inventory.read_text().replace("198.51.100.20", "cache1.internal"))
    dump = tmp_path / "addresses.json"
    result = ansible_playbook(bad, ADDRESSES_DUMP, "-e", f"addresses_dump_path={dump}")
    assert result.returncode != 0
    assert "stacktune_address for cache1 is 'cache1.internal', not an IPv4 address" in (
        result.stdout), result.stdout[-3000:]
    assert not dump.exists()


RELEASE_CHECK = ROOT / "tests" / "playbooks" / "release_check.yml"


@pytest.mark.parametrize(("release", "refused"), [("11", True), ("12", False)])
def test_an_untested_debian_release_stops_the_plan(inventory, release, refused):
    """Debian 11 (Redis 6.0, Python 3.9) is refused by the plan, before any role runs."""
    result = ansible_playbook(inventory, RELEASE_CHECK, "-e", f"release={release}")
    if refused:
        assert result.returncode != 0
        assert "host 'db1' runs Debian 11: stacktune supports Debian 12 (bookworm) and 13 " \
               "(trixie) only" in result.stdout, result.stdout[-3000:]
    else:
        assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(("variables", "message"), [
    ({"stacktune_report_group": "databases"},
     "stacktune_report_group = databases: no host of the inventory is in that group"),
    ({"stacktune_report_app_group": "web"},
     "stacktune_report_app_group = web: no host of the inventory is in that group"),
    ({"stacktune_report_formats": ["md", "pdf"]},
     "stacktune_report_formats = ['md', 'pdf']: give a list of md, json and html"),
    ({"stacktune_report_formats": "html"},
     "stacktune_report_formats = html: give a list of md, json and html"),
], ids=["unknown-group", "unknown-app-group", "unknown-format", "format-not-a-list"])
def test_report_bad_input_names_the_variable_before_any_host(inventory, tmp_path, variables,
                                                             message):
    """report.yml checks its variables on the controller first: a group with no host would
    otherwise be skipped ("no hosts matched") and the run end without a report."""
    reports = tmp_path / "reports"
    result = ansible_playbook(inventory, ROOT / "playbooks" / "report.yml", "-e",
                              json.dumps({**variables, "stacktune_report_dir": str(reports)}))
    assert result.returncode != 0, result.stdout[-3000:]
    assert message in result.stdout, result.stdout[-3000:]
    assert "PLAY [Report on each PostgreSQL host]" not in result.stdout
    assert not reports.exists()


@pytest.mark.parametrize(("app_hosts", "batch", "drained"), [
    (["app1"], "1", set()),
    (["app1", "app2"], "1", {"app1", "app2"}),
    (["app1", "app2"], "2", set()),
    (["app1", "app2"], "100%", set()),
    (["app1", "app2", "app3"], "2", {"app1", "app2", "app3"}),
], ids=["one-app-host", "two-one-at-a-time", "two-at-once", "all-at-once", "three-by-two"])
def test_the_rolling_drain_never_empties_the_upstream(tmp_path, app_hosts, batch, drained):
    """An app host is drained only when some app host stays outside its batch: never the
    only app host (the demo's, nginx on the same host), never a batch of every app host."""
    hosts = "".join(f"        {name}: {{}}\n" for name in app_hosts)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        f"all:\n  vars:\n    ansible_connection: local\n"
        f"    ansible_python_interpreter: \"{sys.executable}\"\n"
        f"  children:\n    app:\n      hosts:\n{hosts}"
        f"    proxy:\n      hosts:\n        {app_hosts[0]}: {{}}\n")
    dump = tmp_path / "decisions.json"
    result = ansible_playbook(inventory, DRAIN_DECISION, "-e", f"stacktune_app_batch={batch}",
                              "-e", f"drain_decision_path={dump}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    decisions = json.loads(dump.read_text())
    assert {name for name, wanted in decisions.items() if wanted} == drained
    assert set(decisions) == set(app_hosts)
