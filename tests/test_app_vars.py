"""The app tier's variables (where the Django project comes from, its WSGI module, its
requirements, its wheelhouse) are checked by the plan play, before any host changes,
and a bad or missing one names the variable and the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_bad_inputs import INVENTORY  # one local host; extra variables override its app's

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
# The demo as "your project": what inventory/demo sets.
DEMO_APP = {"gunicorn_app_src": str(ROOT / "demo"),
            "gunicorn_wsgi_app": "demo_site.wsgi:application",
            "gunicorn_requirements": "requirements-django5.2.txt"}


def plan_play(tmp_path: Path, variables: dict) -> subprocess.CompletedProcess:
    inventory = tmp_path / "inventory"
    inventory.write_text(INVENTORY.format(python=sys.executable))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({**variables,
                                 "host_tuning_sysctl_file": str(tmp_path / "sysctl")}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "--check", "-i", str(inventory),
         str(ROOT / "playbooks" / "plan.yml"), "-e", f"@{extra}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def package_files(tmp_path: Path) -> dict[str, str]:
    """Stand-ins for a built wheel and an sdist (the plan play reads only their names)."""
    wheel = tmp_path / "mysite-1.0-py3-none-any.whl"
    sdist = tmp_path / "mysite-1.0.tar.gz"
    for path in (wheel, sdist):
        path.write_bytes(b"PK")
    return {"wheel": str(wheel), "sdist": str(sdist)}


BAD = [
    ("no-project", {"gunicorn_app_src": ""}, "set exactly one of gunicorn_app_src"),
    ("path-and-git", {"gunicorn_app_git_repo": "https://git.example.com/mysite.git",
                      "gunicorn_app_git_version": "v1"}, "set exactly one of gunicorn_app_src"),
    ("path-missing", {"gunicorn_app_src": "/nonexistent/mysite"},
     "gunicorn_app_src (/nonexistent/mysite) is not a directory on this controller"),
    ("git-without-version", {"gunicorn_app_src": "",
                             "gunicorn_app_git_repo": "https://git.example.com/mysite.git"},
     "set gunicorn_app_git_version"),
    ("wsgi-a-file", {"gunicorn_wsgi_app": "mysite/wsgi.py"}, "set gunicorn_wsgi_app to your WSGI"),
    ("wsgi-unset", {"gunicorn_wsgi_app": ""}, "set gunicorn_wsgi_app to your WSGI"),
    ("requirements-unset", {"gunicorn_requirements": ""}, "set gunicorn_requirements"),
    ("requirements-outside", {"gunicorn_requirements": "../etc/passwd"},
     "set gunicorn_requirements"),
    ("requirements-missing", {"gunicorn_requirements": "requirements.txt"},
     "gunicorn_requirements (requirements.txt) is not a file in gunicorn_app_src"),
    ("wheelhouse-missing", {"gunicorn_wheelhouse": "/nonexistent/wheels"},
     "gunicorn_wheelhouse (/nonexistent/wheels) is not a directory"),
    # A built wheel is the third source: exactly one of the three.
    ("path-and-wheel", {"gunicorn_app_wheel": "{wheel}", "gunicorn_requirements": ""},
     "set exactly one of gunicorn_app_src"),
    ("git-and-wheel", {"gunicorn_app_src": "", "gunicorn_requirements": "",
                       "gunicorn_app_git_repo": "https://git.example.com/mysite.git",
                       "gunicorn_app_git_version": "v1", "gunicorn_app_wheel": "{wheel}"},
     "gunicorn_app_wheel (a wheel of the project built on this controller), not more than one"),
    ("wheel-missing", {"gunicorn_app_src": "", "gunicorn_requirements": "",
                       "gunicorn_app_wheel": "/nonexistent/mysite-1.0-py3-none-any.whl"},
     "gunicorn_app_wheel (/nonexistent/mysite-1.0-py3-none-any.whl) is not a file on this"
     " controller"),
    ("wheel-not-a-wheel", {"gunicorn_app_src": "", "gunicorn_requirements": "",
                           "gunicorn_app_wheel": "{sdist}"},
     "is not a wheel (NAME-VERSION-PYTHON-ABI-PLATFORM.whl)"),
    ("wheel-with-requirements", {"gunicorn_app_src": "", "gunicorn_app_wheel": "{wheel}"},
     "a wheel brings its own requirements: set gunicorn_requirements to ''"),
]


@pytest.mark.parametrize(("variables", "message"), [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_a_bad_app_variable_stops_the_plan_play(tmp_path, variables, message):
    packages = package_files(tmp_path)
    variables = {name: value.format(**packages) if isinstance(value, str) else value
                 for name, value in variables.items()}
    result = plan_play(tmp_path, {**DEMO_APP, **variables})
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-3000:]
    # The callback wraps long lines: compare with the whitespace folded.
    fatal = " ".join(out[out.index("fatal:"):].split())
    assert message in fatal, fatal[:3000]
    assert "Deploying your own Django project" in fatal
    assert not (tmp_path / "sysctl").exists()


def test_the_demo_as_your_project_passes(tmp_path):
    result = plan_play(tmp_path, DEMO_APP)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Check where each app host's Django project comes from" in result.stdout


def test_a_wheel_as_your_project_passes(tmp_path):
    result = plan_play(tmp_path, {**DEMO_APP, "gunicorn_app_src": "", "gunicorn_requirements": "",
                                  "gunicorn_app_wheel": package_files(tmp_path)["wheel"]})
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Check where each app host's Django project comes from" in result.stdout


def test_role_defaults_do_not_point_into_this_checkout():
    """The demo is an example inventory's app, not the roles' default."""
    for path in (ROOT / "roles").glob("*/defaults/main.yml"):
        text = path.read_text()
        assert "demo" not in text and ".cache/wheelhouse" not in text, path


BAD_DJANGO = [
    ("rate-zero", {"django_settings_query_sample_rate": 0},
     "django_settings_query_sample_rate is 0: set it to a number greater than 0 and at most 1"),
    ("rate-above-one", {"django_settings_query_sample_rate": 1.5},
     "django_settings_query_sample_rate is 1.5: set it to a number greater than 0"),
    ("extra-lower-case", {"django_settings_extra": {"demo_naive": True}},
     "django_settings_extra names must be upper-case Python identifiers (DEMO_NAIVE)"),
    ("extra-reserved", {"django_settings_extra": {"SECRET_KEY": "x" * 60}},
     "remove or rename SECRET_KEY"),
]


@pytest.mark.parametrize(("variables", "message"), [case[1:] for case in BAD_DJANGO],
                         ids=[case[0] for case in BAD_DJANGO])
def test_a_bad_query_recorder_or_extra_setting_stops_the_plan_play(tmp_path, variables, message):
    result = plan_play(tmp_path, {**DEMO_APP, **variables})
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-3000:]
    fatal = " ".join(out[out.index("fatal:"):].split())
    assert message in fatal, fatal[:3000]
    assert not (tmp_path / "sysctl").exists()


def test_the_query_recorder_and_naive_mode_pass_the_plan_play(tmp_path):
    result = plan_play(tmp_path, {**DEMO_APP, "django_settings_query_recorder": True,
                                  "django_settings_query_sample_rate": 1,
                                  "django_settings_extra": {"DEMO_NAIVE": True}})
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Check the query recorder's sample rate" in result.stdout
