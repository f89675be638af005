"""nginx in front of Gunicorn, asserted through the running nginx with curl (HTTP/2 and TLS).

curl is installed into the container for these tests only (the minimal image has none).
"""

from __future__ import annotations

import json
import re

import pytest
from stacktune_testlib import extra_vars, run_playbook

SITE = "https://localhost"


@pytest.fixture(scope="module")
def curl(host):
    if not host.exists("curl"):
        host.check_output("DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                          "--no-install-recommends curl")

    def run(*args: str) -> str:
        return host.check_output("curl -sS --max-time 30" + " %s" * len(args), *args)
    return run


def test_https_answers_200_over_http2(curl):
    out = curl("-k", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", SITE + "/")
    assert out == "2 200"


def test_the_app_health_endpoint_answers_through_nginx(curl):
    body = curl("-k", SITE + "/healthz")
    assert json.loads(body)["status"] == "ok"


def test_plain_http_redirects_301_to_https(curl):
    out = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "http://localhost/articles/x/?a=1")
    assert out == "301 https://localhost/articles/x/?a=1"


def test_static_files_are_served_by_nginx_not_gunicorn(host, curl):
    body = curl("-k", SITE + "/static/publishing/site.css")
    assert "The demo's stylesheet" in body
    # Collected by collectstatic into STATIC_ROOT, root's (the app cannot change it).
    collected = host.file("/srv/app/static/publishing/site.css")
    assert collected.exists and collected.user == "root"
    log = host.check_output("tail -n 200 /var/log/nginx/access.log")
    static = [line for line in log.splitlines() if "/static/publishing/site.css" in line]
    assert static and " 200 " in static[-1] and "upstream=-" in static[-1], static[-1:]
    curl("-k", "-o", "/dev/null", SITE + "/healthz")
    log = host.check_output("tail -n 5 /var/log/nginx/access.log")
    proxied = [line for line in log.splitlines() if "/healthz" in line]
    assert proxied and "upstream=127.0.0.1:8000" in proxied[-1], proxied[-1:]


# The deployed nginx.conf, run by a second nginx master on other ports in front of a server
# that echoes the headers it receives: what the app would see behind the live config.
ECHO = r"""
import http.server, json
class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", 18000), Echo).serve_forever()
"""
SPOOF = """
set -eu
python3 -c "$1" & echo_pid=$!
sed -e 's/server 127.0.0.1:8000 /server 127.0.0.1:18000 /' \
    -e 's/listen 80 /listen 18080 /; s/listen \\[::\\]:80 /listen [::]:18080 /' \
    -e 's/listen 443 /listen 18443 /; s/listen \\[::\\]:443 /listen [::]:18443 /' \
    -e 's#^pid .*#pid /tmp/spoof-nginx.pid;#' -e 's/shared:stacktune_tls/shared:spoof_tls/' \
    /etc/nginx/nginx.conf > /tmp/spoof-nginx.conf
nginx -c /tmp/spoof-nginx.conf
sleep 1
curl -sSk --max-time 10 https://localhost:18443/ -H 'X-Forwarded-For: 203.0.113.66' \
    -H 'X-Forwarded-Proto: http' -H 'X-Forwarded-Host: evil.example' \
    -H 'Forwarded: for=203.0.113.66' -H 'X-Real-IP: 203.0.113.66' || true
nginx -c /tmp/spoof-nginx.conf -s quit
kill $echo_pid
rm -f /tmp/spoof-nginx.conf
"""


def test_a_spoofed_x_forwarded_for_is_replaced_by_nginx(host, curl):
    out = host.check_output("bash -c %s spoof %s", SPOOF, ECHO)
    seen = json.loads(out)
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-real-ip"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == "localhost"
    assert "forwarded" not in seen
    assert "203.0.113.66" not in out and "evil.example" not in out


def test_nginx_runs_the_planned_workers_and_timeouts(host, plan):
    planned = plan.services["nginx"]
    live = host.check_output("nginx -T 2>/dev/null")
    for directive in ("worker_processes", "worker_connections", "worker_rlimit_nofile",
                      "proxy_read_timeout", "client_max_body_size"):
        assert re.search(rf"^\s*{directive} {re.escape(planned[directive])};$", live, re.M), \
            directive
    assert re.search(rf"^\s*keepalive {planned['upstream_keepalive']};$", live, re.M)
    workers = host.check_output("pgrep -c -f '^nginx: worker process'")
    assert int(workers) == int(planned["worker_processes"])


def test_a_config_nginx_refuses_never_goes_live(host, curl):
    """Both servers on port 80: nginx -t refuses the candidate; the live file and the running
    master stay, and the site keeps answering."""
    before = host.file("/etc/nginx/nginx.conf").sha256sum
    master = host.check_output("cat /run/nginx.pid")
    result = run_playbook(*extra_vars(nginx_https_port=80), playbook="playbooks/nginx.yml")
    assert result.returncode != 0
    assert "nginx -t" in result.stdout or "failed to validate" in result.stdout, \
        result.stdout[-2000:]
    assert "duplicate" in result.stdout, result.stdout[-2000:]
    assert host.file("/etc/nginx/nginx.conf").sha256sum == before
    assert host.check_output("cat /run/nginx.pid") == master
    assert curl("-k", "-o", "/dev/null", "-w", "%{http_code}", SITE + "/") == "200"
