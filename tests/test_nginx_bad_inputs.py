"""The proxy tier's bad inputs through playbooks/plan.yml: refused before any change, naming
the variable (the certificate cases need files, so they are not in bad_inputs.yaml)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_bad_inputs import ANSIBLE_PLAYBOOK, INVENTORY, ROOT, _ansible_env
from test_tls import write_pair

PROXY_INVENTORY = INVENTORY + "[proxy]\nlocalhost\n"


def plan_play(tmp_path, variables: dict, inventory: str = PROXY_INVENTORY):
    inventory_file = tmp_path / "inventory"
    inventory_file.write_text(inventory.format(python=sys.executable))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({**variables,
                                 "host_tuning_sysctl_file": str(tmp_path / "sysctl.conf")}))
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "--check", "-i", str(inventory_file),
         str(ROOT / "playbooks" / "plan.yml"), "-e", f"@{extra}"],
        cwd=ROOT, env=_ansible_env(tmp_path), capture_output=True, text=True, timeout=300)


def _cases(tmp_path):
    cert, key = write_pair(tmp_path, "site")
    _, other_key = write_pair(tmp_path, "other")
    return {
        "unreadable-certificate": ({"nginx_tls_certificate": str(tmp_path / "missing.crt"),
                                    "nginx_tls_key": str(key)},
                                   "nginx_tls_certificate = "),
        "certificate-is-a-directory": ({"nginx_tls_certificate": str(tmp_path),
                                        "nginx_tls_key": str(key)}, "nginx_tls_certificate = "),
        "key-of-another-certificate": ({"nginx_tls_certificate": str(cert),
                                        "nginx_tls_key": str(other_key)},
                                       "nginx_tls_key = "),
        "timeout-chain-out-of-order": ({"stacktune_overrides": {
            "nginx": {"proxy_read_timeout": "20s"}}}, "nginx.proxy_read_timeout"),
    }


@pytest.mark.parametrize("case", ["unreadable-certificate", "certificate-is-a-directory",
                                  "key-of-another-certificate", "timeout-chain-out-of-order"])
def test_the_plan_play_refuses_bad_proxy_input_before_any_change(case, tmp_path):
    variables, names = _cases(tmp_path)[case]
    proc = plan_play(tmp_path, variables)
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "stacktune plan: " in out, proc.stdout[-3000:]
    assert names in out[out.index("fatal:"):], proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "host_tuning" not in proc.stdout
    assert not (tmp_path / "sysctl.conf").exists()


def test_the_plan_play_refuses_a_proxy_without_app_hosts(tmp_path):
    inventory = PROXY_INVENTORY.replace("[app]\nlocalhost\n", "[app]\n")
    proc = plan_play(tmp_path, {}, inventory)
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "nginx is placed on localhost but no host runs gunicorn" in out, proc.stdout[-3000:]
    assert "host_tuning" not in proc.stdout


def test_the_plan_play_accepts_a_matching_pair(tmp_path):
    cert, key = write_pair(tmp_path, "site")
    proc = plan_play(tmp_path, {"nginx_tls_certificate": str(cert), "nginx_tls_key": str(key)})
    assert "stacktune plan: " not in proc.stdout, proc.stdout[-3000:]
    assert "Plan the whole stack once, on the controller" in proc.stdout
