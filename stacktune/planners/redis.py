"""Redis as Django's cache: bounded memory, LRU eviction, no persistence (Redis docs)."""

from __future__ import annotations

from stacktune.section import Section
from stacktune.units import MiB, format_redis_memory, human_bytes

TCP_BACKLOG = 511
# One value may take at most 1/16 of maxmemory (Redis's floor is 1mb, its default
# 512mb); a client's query and output buffers at most twice that, so one client
# with one huge value stays inside the 20% of the budget kept above maxmemory.
BULK_OF_MAXMEMORY = 16
REDIS_MIN_LIMIT_BYTES = 1 * MiB
REDIS_MAX_BULK_BYTES = 512 * MiB
CLIENT_BUFFER_BULKS = 2
OUTPUT_BUFFER_SOFT_SECONDS = 10
REDIS_DEFAULT_OTHER_CLIENTS = "slave 268435456 67108864 60 pubsub 33554432 8388608 60"


def max_bulk_bytes(maxmemory_bytes: int) -> int:
    """The largest value one command may carry: maxmemory / 16, 1mb to 512mb, whole MiB."""
    share = maxmemory_bytes // BULK_OF_MAXMEMORY // MiB * MiB
    return min(max(share, REDIS_MIN_LIMIT_BYTES), REDIS_MAX_BULK_BYTES)


def plan_redis(maxmemory_bytes: int, budget_bytes: int, shared: bool) -> Section:
    s = Section("redis")
    s.set("maxmemory", format_redis_memory(maxmemory_bytes),
          f"80% of Redis's {human_bytes(budget_bytes)} "
          f"{'share of a shared host' if shared else 'host'}; the rest absorbs fragmentation "
          "and client buffers")
    s.set("maxmemory-policy", "allkeys-lru",
          "a cache evicts the least recently used keys when full; every key is evictable")
    s.set("save", '""', "a pure cache: no RDB snapshots, no fork, no disk I/O")
    s.set("appendonly", "no", "a pure cache: no append-only file")
    s.set("tcp-backlog", str(TCP_BACKLOG), "Redis's default; net.core.somaxconn is raised above it")
    s.set("timeout", "0", "Django keeps its cache connections open; never drop idle clients")
    s.set("tcp-keepalive", "300", "detect dead peers (Redis's default)")
    s.set("lazyfree-lazy-eviction", "yes", "free evicted values in a background thread")
    s.set("lazyfree-lazy-expire", "yes", "free expired values in a background thread")
    s.set("lazyfree-lazy-server-del", "yes", "free overwritten values in a background thread")
    s.set("lazyfree-lazy-user-del", "yes", "DEL behaves like UNLINK")
    s.set("replica-lazy-flush", "yes", "flush in the background when a replica resyncs")
    bulk = max_bulk_bytes(maxmemory_bytes)
    buffer = bulk * CLIENT_BUFFER_BULKS
    s.set("proto-max-bulk-len", format_redis_memory(bulk),
          f"one value at most 1/{BULK_OF_MAXMEMORY} of maxmemory (Redis's default 512mb would "
          "let one SET push Redis far past maxmemory)")
    s.set("client-query-buffer-limit", format_redis_memory(buffer),
          f"a client's pending command at most {CLIENT_BUFFER_BULKS} x proto-max-bulk-len "
          "(default 1gb); the client is closed beyond it")
    # Written in bytes with Redis's defaults for the other classes, exactly as CONFIG GET
    # reports it (7.0 and 8.0), so a live CONFIG SET is idempotent.
    s.set("client-output-buffer-limit",
          f"normal {buffer} {bulk} {OUTPUT_BUFFER_SOFT_SECONDS} {REDIS_DEFAULT_OTHER_CLIENTS}",
          f"replies queued for a normal client: closed above {format_redis_memory(buffer)}, or "
          f"above {format_redis_memory(bulk)} for {OUTPUT_BUFFER_SOFT_SECONDS} s (default: "
          "unlimited); one reader of a large value fits the budget above maxmemory")
    return s
