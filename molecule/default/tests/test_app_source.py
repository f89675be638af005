"""Your own project, not the demo: the app's code reaches the host as one archive, a
second run sends nothing, a changed file is put in place and Gunicorn reloaded, files
the source dropped are removed, and caches, databases and the settings module never
ship. A project built as a wheel is installed into the virtualenv and served from there.
The PostgreSQL major the plan is for is the one the host runs."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))

from stacktune_testlib import REPO, http_get, inventory_vars, run_playbook

SRC = "/srv/app/src"
EXCLUDED = re.compile(r"(^|/)(__pycache__|\.git)(/|$)|\.pyc$|\.sqlite3$"
                      r"|(^|/)stacktune_settings\.py$")
# Task headers name the role by its collection name.
GUNICORN = "stacktune.stacktune.gunicorn"
SEND_TASK = f"{GUNICORN} : Send the archives that changed"


def task_results(stdout: str) -> dict[str, str]:
    """Each task's (and handler's) output block, by its name."""
    blocks = re.split(r"^(?:TASK|RUNNING HANDLER) \[(.+?)\] \**$", stdout, flags=re.MULTILINE)
    return dict(zip(blocks[1::2], blocks[2::2], strict=True))


def recap_changed(stdout: str) -> int:
    return int(re.search(r"changed=(\d+)", stdout.split("PLAY RECAP")[-1]).group(1))


def tree_digest(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*"))
            if path.is_file() and not EXCLUDED.search(str(path.relative_to(root)))}


def host_digest(host) -> dict[str, str]:
    """The host's tree, without the bytecode Python writes there itself (as root: the
    config check imports the app), which is never shipped."""
    out = host.check_output(f"cd {SRC} && find . -name __pycache__ -prune -o -type f -print0"
                            " | xargs -0 sha256sum")
    return {line.split(None, 1)[1].removeprefix("./"): line.split(None, 1)[0]
            for line in out.splitlines()}


def gunicorn_pids(host) -> tuple[str, set[str]]:
    master = host.check_output("systemctl show -p MainPID --value stacktune-gunicorn")
    workers = set(host.check_output(f"pgrep -P {master}").split())
    return master, workers


def app_play(*args: str):
    result = run_playbook(*args, playbook="playbooks/app.yml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the scenario's project with files that must never ship."""
    source = Path(inventory_vars()["gunicorn_app_src"])
    copy = tmp_path_factory.mktemp("mysite") / "mysite"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (copy / "publishing" / "__pycache__").mkdir(exist_ok=True)
    (copy / "publishing" / "__pycache__" / "models.cpython-311.pyc").write_bytes(b"\0stale")
    (copy / "db.sqlite3").write_bytes(b"SQLite format 3\0")
    (copy / "demo_site" / "stacktune_settings.py").write_text("SECRET_KEY = 'from-the-laptop'\n")
    return copy


def test_the_host_tree_is_the_project_without_the_excluded_files(host):
    source = Path(inventory_vars()["gunicorn_app_src"])
    on_host = host_digest(host)
    # Written on the host, by django_settings: the settings and the query recorder beside them.
    assert on_host.pop("demo_site/stacktune_settings.py")
    assert on_host.pop("demo_site/stacktune_queries.py")
    assert on_host == tree_digest(source)
    assert host.check_output(f"find {SRC} \\( -name '*.sqlite3' -o -name .git \\) -print") == ""
    # Root's tree, read-only to the app: nothing owned by anyone else or writable by others.
    assert host.check_output(f"find {SRC} ! -user root -print") == ""
    assert host.check_output(f"find {SRC} -perm /022 -print") == ""
    settings = host.file(f"{SRC}/demo_site/stacktune_settings.py")
    assert (settings.user, settings.group, settings.mode) == ("root", "app", 0o640)


def test_the_same_project_from_elsewhere_sends_nothing_and_ships_no_excluded_file(host, project):
    before = host_digest(host)
    result = app_play("--check", "--diff", "-e", f"gunicorn_app_src={project}")
    send = task_results(result.stdout)[SEND_TASK]
    assert "changed:" not in send, send
    assert recap_changed(result.stdout) == 0, result.stdout[-3000:]
    result = app_play("-e", f"gunicorn_app_src={project}")
    assert recap_changed(result.stdout) == 0, result.stdout[-3000:]
    assert host_digest(host) == before
    stale = host.file(f"{SRC}/publishing/__pycache__/models.cpython-311.pyc")
    assert not stale.exists or b"\0stale" not in stale.content
    settings = host.file(f"{SRC}/demo_site/stacktune_settings.py").content_string
    assert "from-the-laptop" not in settings


def test_a_git_checkout_of_the_same_project_sends_nothing(host, project, tmp_path):
    """gunicorn_app_git_repo: checked out on the controller, shipped like a directory."""
    repo = tmp_path / "repo"
    shutil.copytree(project, repo)
    git = ["git", "-C", str(repo), "-c", "user.name=stacktune", "-c", "user.email=t@example.com"]
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "v1"]):
        subprocess.run([*git, *command], check=True)
    before = host_digest(host)
    result = app_play("-e", json.dumps({
        "gunicorn_app_src": "", "gunicorn_app_git_repo": f"file://{repo}",
        "gunicorn_app_git_version": "main", "gunicorn_app_git_cache": str(tmp_path / "cache")}))
    results = task_results(result.stdout)
    assert "changed: [" in results[f"{GUNICORN} : Check out the app's repository on the controller"]
    assert "changed:" not in results[SEND_TASK], results[SEND_TASK]
    assert host_digest(host) == before
    assert list((tmp_path / "cache").glob("*/.git"))


def test_a_changed_file_is_put_in_place_and_gunicorn_reloaded(host, project):
    marker = f"probe-{time.time_ns()}"
    (project / "publishing" / "stacktune_probe.py").write_text(f'VALUE = "{marker}"\n')
    manage = project / "manage.py"
    original = manage.read_text()
    manage.write_text(original + f"# {marker}\n")
    try:
        checked = app_play("--check", "--diff", "-e", f"gunicorn_app_src={project}")
        assert "changed: [" in task_results(checked.stdout)[SEND_TASK]
        probe = f"{SRC}/publishing/stacktune_probe.py"
        assert not host.file(probe).exists, "--check changed the host"

        master, workers = gunicorn_pids(host)
        applied = app_play("-e", f"gunicorn_app_src={project}")
        results = task_results(applied.stdout)
        assert "changed: [" in results[SEND_TASK]
        assert "changed: [" in results[f"{GUNICORN} : Reload Gunicorn"]
        assert host.file(probe).content_string == f'VALUE = "{marker}"\n'
        assert host.file(f"{SRC}/manage.py").content_string.endswith(f"# {marker}\n")
        assert host.file(f"{SRC}/manage.py").mode == 0o755
        # HUP: the same master, new workers that import the new code.
        for _ in range(50):
            new_master, new_workers = gunicorn_pids(host)
            if new_workers and not new_workers & workers:
                break
            time.sleep(0.2)
        assert new_master == master
        assert new_workers and not new_workers & workers, (workers, new_workers)

        again = app_play("-e", f"gunicorn_app_src={project}")
        assert "changed:" not in task_results(again.stdout)[SEND_TASK]
        assert recap_changed(again.stdout) == 0, again.stdout[-3000:]
    finally:
        (project / "publishing" / "stacktune_probe.py").unlink()
        manage.write_text(original)
        app_play()
    # The file the project dropped is gone from the host; the rest is the project again.
    assert not host.file(f"{SRC}/publishing/stacktune_probe.py").exists
    assert host.file(f"{SRC}/manage.py").content_string == original


WHEEL_NAME = "stacktune_demo"
WHEEL_PACKAGES = ("demo_site", "publishing")


def build_wheel(source: Path, requirements: Path, dest: Path, version: str,
                marker: str) -> Path:
    """A wheel of the demo (which has no packaging metadata), built as pip's backends
    build one (PEP 427: the packages, METADATA with the requirements file's pins as
    Requires-Dist, WHEEL, RECORD), offline and without a build backend on the controller.
    Fixed timestamps: the same files make the same bytes. `marker` goes into the list
    page's sidebar, so the page shows which build Gunicorn serves."""
    files: dict[str, bytes] = {}
    for package in WHEEL_PACKAGES:
        for path in sorted((source / package).rglob("*")):
            relative = str(path.relative_to(source))
            if path.is_file() and not EXCLUDED.search(relative):
                files[relative] = path.read_bytes()
    page = "publishing/templates/publishing/article_list.html"
    files[page] = files[page].replace(b"{% block sidebar %}",
                                      f"{{% block sidebar %}}<!-- {marker} -->".encode())
    pins = [line.strip() for line in requirements.read_text().splitlines()
            if re.match(r"^[A-Za-z0-9_.-]+==", line.strip())]
    info = f"{WHEEL_NAME}-{version}.dist-info"
    files[f"{info}/METADATA"] = "".join(
        [f"Metadata-Version: 2.1\nName: {WHEEL_NAME}\nVersion: {version}\n"]
        + [f"Requires-Dist: {pin}\n" for pin in pins]).encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: stacktune-tests\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    def digest(data: bytes) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    record = [f"{name},sha256={digest(data)},{len(data)}" for name, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{WHEEL_NAME}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data)
    return wheel


def served_page(host) -> str:
    """The list page through Gunicorn (the header stands in for the TLS proxy)."""
    status, body = http_get(host, "http://127.0.0.1:8000/", {"X-Forwarded-Proto": "https"})
    assert status == 200, body[:2000]
    return body


def installed_version(host) -> str | None:
    out = host.run(f"/srv/app/venv/bin/python -m pip show {WHEEL_NAME}")
    match = re.search(r"^Version: (\S+)$", out.stdout, flags=re.MULTILINE)
    return match.group(1) if out.rc == 0 and match else None


def test_a_wheel_of_the_project_is_installed_served_reinstalled_and_replaced(host, tmp_path):
    """gunicorn_app_wheel: the wheel is sent, installed into the virtualenv with its
    requirements from the wheelhouse, and served (settings written into the installed
    package); a re-run changes nothing; a rebuilt wheel of the same version is
    reinstalled and Gunicorn reloaded; the source tree deployed after it replaces it."""
    scenario = inventory_vars()
    source = Path(scenario["gunicorn_app_src"])
    requirements = source / scenario["gunicorn_requirements"]
    marker = f"wheel-build-{time.time_ns()}"
    first = build_wheel(source, requirements, tmp_path / "first", "1.0", marker + "-a")
    rebuilt = build_wheel(source, requirements, tmp_path / "rebuilt", "1.0", marker + "-b")
    assert first.read_bytes() != rebuilt.read_bytes()
    assert build_wheel(source, requirements, tmp_path / "again", "1.0",
                       marker + "-a").read_bytes() == first.read_bytes()
    install = f"{GUNICORN} : Install the wheel's version and the requirements it declares"
    reinstall = f"{GUNICORN} : Reinstall the wheel whose file changed (same version)"

    def wheel_vars(wheel: Path) -> list[str]:
        return ["-e", json.dumps({"gunicorn_app_src": "", "gunicorn_requirements": "",
                                  "gunicorn_app_wheel": str(wheel)})]

    try:
        checked = app_play("--check", "--diff", *wheel_vars(first))
        assert "changed: [" in task_results(checked.stdout)[SEND_TASK]
        assert not host.file("/srv/app/dist").exists, "--check changed the host"
        assert installed_version(host) is None

        master, workers = gunicorn_pids(host)
        applied = app_play(*wheel_vars(first))
        results = task_results(applied.stdout)
        assert "changed: [" in results[SEND_TASK]
        assert "changed: [" in results[install]
        assert "changed: [" in results[f"{GUNICORN} : Reload Gunicorn"]
        assert installed_version(host) == "1.0"
        # The source tree is gone from the host: only the manage.py written for the wheel.
        assert sorted(host_digest(host)) == ["manage.py"]
        assert "demo_site.settings" in host.file(f"{SRC}/manage.py").content_string
        purelib = host.check_output("/srv/app/venv/bin/python -c %s",
                                    "import sysconfig; print(sysconfig.get_path('purelib'))")
        settings = host.file(f"{purelib}/demo_site/stacktune_settings.py")
        assert (settings.user, settings.group, settings.mode) == ("root", "app", 0o640)
        # Served by new workers of the same master, from the installed package.
        new_master, new_workers = gunicorn_pids(host)
        assert new_master == master
        assert new_workers and not new_workers & workers, (workers, new_workers)
        assert f"<!-- {marker}-a -->" in served_page(host)
        status, body = http_get(host, "http://127.0.0.1:8000/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok", "database": "ok",
                                                    "cache": "ok"})

        again = app_play(*wheel_vars(first))
        assert "changed:" not in task_results(again.stdout)[SEND_TASK]
        assert recap_changed(again.stdout) == 0, again.stdout[-3000:]
        assert gunicorn_pids(host) == (new_master, new_workers)

        # The same version, other bytes: reinstalled (by content), and new workers serve it.
        checked = app_play("--check", "--diff", *wheel_vars(rebuilt))
        assert "changed: [" in task_results(checked.stdout)[reinstall]
        assert f"<!-- {marker}-a -->" in served_page(host), "--check changed what is served"
        master, workers = new_master, new_workers
        applied = app_play(*wheel_vars(rebuilt))
        results = task_results(applied.stdout)
        assert "changed: [" in results[reinstall]
        assert "changed: [" in results[f"{GUNICORN} : Reload Gunicorn"]
        new_master, new_workers = gunicorn_pids(host)
        assert new_master == master
        assert new_workers and not new_workers & workers, (workers, new_workers)
        assert f"<!-- {marker}-b -->" in served_page(host)
        assert installed_version(host) == "1.0"
    finally:
        restored = app_play()
    # The source tree again, the wheel's package and its settings module gone.
    uninstall = task_results(restored.stdout)[f"{GUNICORN} : Uninstall the wheel's package"]
    assert "changed: [" in uninstall
    assert installed_version(host) is None
    on_host = host_digest(host)
    assert on_host.pop("demo_site/stacktune_settings.py")
    assert on_host.pop("demo_site/stacktune_queries.py")
    assert on_host == tree_digest(source)
    assert not host.file("/srv/app/dist").exists
    assert not host.file(f"{purelib}/demo_site").exists
    assert marker not in served_page(host)


def test_the_plan_is_for_the_postgresql_major_the_host_runs(host, tmp_path):
    """host_profile reports the majors pg_lsclusters lists; the plan is for that one."""
    clusters = sorted({int(line.split()[0]) for line in
                       host.check_output("pg_lsclusters --no-header").splitlines()})
    dump = tmp_path / "plan.json"
    result = run_playbook("-e", f"plan_dump_path={dump}",
                          playbook=str(REPO / "tests" / "playbooks" / "plan_dump.yml"))
    assert result.returncode == 0, result.stdout[-3000:]
    planned = json.loads(dump.read_text())
    name = host.backend.get_hostname()
    assert planned["postgresql_installed"][name] == clusters
    assert [planned["pg_version"]] == clusters
    running = host.check_output("runuser -u postgres -- psql -XAtqc 'SHOW server_version_num'")
    assert int(running) // 10000 == planned["pg_version"]
