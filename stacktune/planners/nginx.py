"""nginx in front of Gunicorn (nginx docs: ngx_core_module, ngx_http_upstream_module,
ngx_http_proxy_module, ngx_http_core_module).

Values are written as nginx.conf writes them ("35s", "10m", "4 8k"), so the template
prints them. Sized for the smallest proxy host; the upstream is every app host.
"""

from __future__ import annotations

import math

from stacktune.section import Section

# Client connections expected per request slot of the app tier (workers x threads x hosts):
# nginx holds idle keep-alive and slow clients itself, so it sees many more connections
# than Gunicorn has threads.
CLIENTS_PER_APP_SLOT = 8
MIN_CLIENTS = 512
# nginx's own default worker_connections is 512; Debian's nginx.conf ships 768.
MIN_WORKER_CONNECTIONS = 1024
# Beyond its connections a worker opens static files and request-buffer temp files.
FILES_PER_CONNECTION = 2
# nginx waits this much longer than Gunicorn may take, so it never answers 504 for a
# request Gunicorn is still allowed to finish.
PROXY_READ_MARGIN_SECONDS = 5
PROXY_CONNECT_TIMEOUT_SECONDS = 5
# A slow client gets this long between two reads or writes (nginx's default is 60 s).
CLIENT_TIMEOUT_SECONDS = 15
CLIENT_KEEPALIVE_SECONDS = 65
# Django's own limit for a non-file body (DATA_UPLOAD_MAX_MEMORY_SIZE) is 2.5 MB; file
# uploads stream to disk, so the proxy's cap is higher.
CLIENT_MAX_BODY_SIZE = "10m"
# Bodies up to this size stay in memory; larger ones are buffered to a temp file.
CLIENT_BODY_BUFFER_SIZE = "128k"
# Gunicorn refuses a request line over 4094 bytes and a header over 8190
# (limit_request_line, limit_request_field_size): nginx stops the same requests first.
LARGE_CLIENT_HEADER_BUFFERS = "4 8k"
MAX_FAILS = 3
FAIL_TIMEOUT_SECONDS = 10


def plan_nginx(cpus: float, app_hosts: int, gunicorn_workers: int,
               gunicorn_threads: int, gunicorn_timeout: int, gunicorn_keepalive: int) -> Section:
    """nginx's settings for the proxy tier from the smallest proxy host's CPUs and the app
    tier's planned Gunicorn (workers x threads per app host)."""
    s = Section("nginx")
    workers = max(1, math.ceil(cpus))
    s.set("worker_processes", str(workers),
          f"one per usable CPU ({cpus:g} after cgroup limits, rounded up): nginx workers "
          "never block, so more only adds context switches")
    slots = gunicorn_workers * gunicorn_threads * app_hosts
    clients = max(MIN_CLIENTS, CLIENTS_PER_APP_SLOT * slots)
    # A request holds a client and an upstream connection; the client spread over the
    # proxies is uneven, so each proxy host is sized for all of them.
    per_worker = math.ceil(2 * clients / workers)
    keepalive = max(2, math.ceil(slots / workers))
    connections = max(MIN_WORKER_CONNECTIONS, per_worker + keepalive)
    s.set("worker_connections", str(connections),
          f"{clients} client connections ({CLIENTS_PER_APP_SLOT} per request slot of the app "
          f"tier, {gunicorn_workers} workers x {gunicorn_threads} threads x {app_hosts} app "
          f"host(s), at least {MIN_CLIENTS}) x 2 (client + upstream) / {workers} worker(s) "
          f"+ {keepalive} idle upstream, at least {MIN_WORKER_CONNECTIONS}")
    s.set("worker_rlimit_nofile", str(connections * FILES_PER_CONNECTION),
          f"{FILES_PER_CONNECTION} file descriptors per connection: the socket plus a static "
          "file or a buffered body")
    s.set("upstream_keepalive", str(keepalive),
          f"idle connections each worker keeps to Gunicorn: {slots} request slots "
          f"({gunicorn_workers} x {gunicorn_threads} x {app_hosts}) / {workers} worker(s), so "
          "a busy moment reuses connections instead of opening new ones")
    s.set("upstream_keepalive_timeout", f"{max(1, gunicorn_keepalive - 1)}s",
          f"below Gunicorn's keepalive ({gunicorn_keepalive} s): nginx drops an idle "
          "connection before Gunicorn closes it under a request (a 502)")
    s.set("client_max_body_size", CLIENT_MAX_BODY_SIZE,
          "uploads up to 10 MB; Django caps non-file bodies at 2.5 MB itself")
    s.set("client_body_buffer_size", CLIENT_BODY_BUFFER_SIZE,
          "bodies up to 128 KB are buffered in memory, larger ones on disk, before Gunicorn "
          "sees the request (proxy_request_buffering on)")
    s.set("large_client_header_buffers", LARGE_CLIENT_HEADER_BUFFERS,
          "request line and each header up to 8 KB, as Gunicorn's own limits (4094-byte "
          "line, 8190-byte header): nginx answers 414/400 before a thread is used")
    s.set("client_header_timeout", f"{CLIENT_TIMEOUT_SECONDS}s",
          "a slow client's headers; it never holds a Gunicorn thread, only an nginx connection")
    s.set("client_body_timeout", f"{CLIENT_TIMEOUT_SECONDS}s",
          "between two reads of a slow client's body")
    s.set("send_timeout", f"{CLIENT_TIMEOUT_SECONDS}s",
          "between two writes to a slow client")
    s.set("keepalive_timeout", f"{CLIENT_KEEPALIVE_SECONDS}s",
          "idle client keep-alive (nginx's default); costs an nginx connection only")
    s.set("proxy_connect_timeout", f"{PROXY_CONNECT_TIMEOUT_SECONDS}s",
          "a down app host is given up quickly and the next one tried")
    read = gunicorn_timeout + PROXY_READ_MARGIN_SECONDS
    s.set("proxy_read_timeout", f"{read}s",
          f"above gunicorn.timeout ({gunicorn_timeout} s) + {PROXY_READ_MARGIN_SECONDS} s: the "
          "database and Gunicorn end a slow request first, nginx never cuts one short")
    s.set("proxy_send_timeout", f"{read}s", "as proxy_read_timeout")
    s.set("max_fails", str(MAX_FAILS),
          f"an app host that fails {MAX_FAILS} requests within fail_timeout is taken out")
    s.set("fail_timeout", f"{FAIL_TIMEOUT_SECONDS}s",
          "how long it stays out before nginx tries it again (passive health check)")
    return s
