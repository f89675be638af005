"""Collect a whole snapshot from addresses (the CLI's path), with the optional analyses.

The missing-index advisor (stacktune.report.indexes) and the N+1 records of the Django
middleware (stacktune.report.nplusone) join the snapshot as sections holding their
findings; when they cannot run, the section says why and how to enable it.
"""

from __future__ import annotations

import importlib
from typing import Any

from stacktune.report import collect as collector

INDEXES_HINT = ("install postgresql-NN-hypopg and postgresql-NN-pg-qualstats and create the "
                "hypopg and pg_qualstats extensions (the kit's postgresql role does this when "
                "the index advisor is enabled)")
NPLUSONE_HINT = ("give --redis with the address of the Redis the Django middleware records "
                 "into (django_settings' N+1 recorder)")


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(f"stacktune.report.{name}")
    except ImportError:
        return None


def missing_indexes(connection: Any, snapshot: dict[str, Any]) -> dict[str, Any]:
    statements = snapshot.get("statements") or {}
    if "error" in statements:
        return {"error": "needs pg_stat_statements: " + statements["error"]}
    indexes = _optional("indexes")
    if indexes is None:
        return {"error": f"the index advisor is not part of this version: {INDEXES_HINT}"}
    cursor = connection.cursor()
    try:
        cursor.execute("SELECT extname FROM pg_extension WHERE extname IN ('hypopg', "
                       "'pg_qualstats')")
        present = {row[0] for row in cursor.fetchall()}
        if "hypopg" not in present:
            return {"error": f"hypopg is not installed in this database: {INDEXES_HINT}"}
        pool = collector.advisor_statements(connection, statements["rows"])
        return {"findings": indexes.missing_index_findings(cursor, pool)}
    except Exception as error:
        return {"error": f"{(str(error).strip().splitlines() or ['?'])[0]}: {INDEXES_HINT}"}
    finally:
        connection.rollback()


def n_plus_one(redis_url: str | None) -> dict[str, Any]:
    if not redis_url:
        return {"error": f"not computed: {NPLUSONE_HINT}"}
    nplusone = _optional("nplusone")
    if nplusone is None:
        return {"error": "the N+1 recorder reader is not part of this version"}
    try:
        return {"findings": nplusone.n_plus_one_findings(nplusone.read_records(redis_url))}
    except Exception as error:
        return {"error": f"cannot read the N+1 records from Redis: {error}"}


def collect_from(dsn: str, pgbouncer_dsn: str | None = None, redis_url: str | None = None,
                 top_n: int = collector.TOP_N) -> dict[str, Any]:
    """The snapshot of the database at ``dsn`` plus PgBouncer, Redis and the optional analyses."""
    connection = collector.connect(dsn)
    try:
        snapshot = collector.collect(connection, top_n=top_n)
        snapshot["missing_indexes"] = missing_indexes(connection, snapshot)
    finally:
        connection.close()
    if pgbouncer_dsn:
        try:
            bouncer = collector.connect(pgbouncer_dsn)
        except collector.CollectError as error:
            snapshot["pgbouncer"] = {"error": str(error)}
        else:
            try:
                bouncer.autocommit = True
                snapshot["pgbouncer"] = collector.collect_pgbouncer(bouncer)
            finally:
                bouncer.close()
    if redis_url:
        snapshot["redis"] = collector.collect_redis(redis_url)
    snapshot["nplusone"] = n_plus_one(redis_url)
    return snapshot
