"""Redis as Django's cache: bounded memory, LRU eviction, no persistence (Redis docs)."""

from __future__ import annotations

from stacktune.section import Section
from stacktune.units import format_redis_memory, human_bytes

TCP_BACKLOG = 511


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
    return s
