#!/usr/bin/python
"""Ansible module: a read-only diagnostics snapshot of a PostgreSQL database."""

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_snapshot
short_description: Collect a read-only diagnostics snapshot of a PostgreSQL database
description:
  - Reads pg_stat_statements (top statements by total and mean time, calls, rows and
    shared-block reads), the generic plans of the worst read statements, unused,
    duplicate and invalid indexes, foreign keys without an index, tables without a
    primary key, per-table vacuum state, cache and temporary-file counters and
    checkpoint counters, and returns them as data for C(stacktune report).
  - The session is read-only (C(default_transaction_read_only)) with a statement
    timeout. Each section collects on its own; a missing extension or privilege becomes
    an C(error) naming what to enable, and the other sections are still returned.
  - Never changes anything, so it runs in check mode. Needs psycopg2 on the host
    (python3-psycopg2, which the postgresql role installs). Shares its collector with
    the C(stacktune report) command.
options:
  login_db:
    description: Database to report on (pg_stat_statements is read in it).
    type: str
    required: true
  login_unix_socket:
    description: Directory of the server's Unix socket; used when I(login_host) is not set.
    type: str
    default: /var/run/postgresql
  login_host:
    description: Host name or address to connect to over TCP instead of the socket.
    type: str
  login_port:
    description: Server port.
    type: int
    default: 5432
  login_user:
    description: Role to connect as; default the OS user the task runs as (peer login).
    type: str
  login_password:
    description: Password of I(login_user).
    type: str
  top:
    description: Statements per top list.
    type: int
    default: 10
  statement_timeout_ms:
    description: statement_timeout of the report's session, in milliseconds.
    type: int
    default: 10000
author: stacktune
"""

EXAMPLES = r"""
- name: Snapshot the application database as the postgres superuser (peer login)
  stacktune.stacktune.postgresql_snapshot:
    login_db: app
  become: true
  become_user: postgres
  register: snapshot
"""

RETURN = r"""
snapshot:
  description: >-
    The snapshot: server (version, settings), statements, plans, offset, indexes,
    foreign_keys_without_index, tables_without_pk, vacuum, database, checkpoints; a
    section that could not be read is C({"error": "..."}).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stacktune.stacktune.plugins.module_utils.stacktune_report_collect import (
    CollectError,
    advisor_statements,
    collect,
    connect,
)

try:
    # The missing-index advisor, where this collection ships it as module_utils.
    from ansible_collections.stacktune.stacktune.plugins.module_utils.stacktune_report_indexes import (  # noqa: E501
        missing_index_findings,
    )
except ImportError:
    missing_index_findings = None

INDEXES_HINT = ("install postgresql-NN-hypopg and create the hypopg extension in this database, "
                "or run `stacktune report --dsn` from the controller")


def missing_indexes(connection, snapshot: dict) -> dict:
    """The advisor's findings, or why they could not be computed (never fails the task)."""
    statements = snapshot.get("statements") or {}
    if "error" in statements:
        return {"error": "needs pg_stat_statements: " + statements["error"]}
    if missing_index_findings is None:
        return {"error": f"the index advisor is not shipped to the host: {INDEXES_HINT}"}
    cursor = connection.cursor()
    try:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'")
        if not cursor.fetchall():
            return {"error": f"hypopg is not installed in this database: {INDEXES_HINT}"}
        pool = advisor_statements(connection, statements["rows"])
        return {"findings": missing_index_findings(cursor, pool)}
    except Exception as error:
        return {"error": f"{(str(error).strip().splitlines() or ['?'])[0]}: {INDEXES_HINT}"}
    finally:
        connection.rollback()


def conninfo_word(value: str) -> str:
    """A libpq key=value word: quoted, with backslashes and quotes escaped."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "login_db": {"type": "str", "required": True},
            "login_unix_socket": {"type": "str", "default": "/var/run/postgresql"},
            "login_host": {"type": "str"},
            "login_port": {"type": "int", "default": 5432},
            "login_user": {"type": "str"},
            "login_password": {"type": "str", "no_log": True},
            "top": {"type": "int", "default": 10},
            "statement_timeout_ms": {"type": "int", "default": 10000},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        import psycopg2
    except ImportError:
        module.fail_json(msg="psycopg2 is missing on this host: install python3-psycopg2 "
                         "(the postgresql role installs it)")
    words = {"dbname": params["login_db"], "port": params["login_port"],
             "host": params["login_host"] or params["login_unix_socket"],
             "user": params["login_user"], "password": params["login_password"],
             "application_name": "stacktune report"}
    dsn = " ".join(f"{key}={conninfo_word(value)}" for key, value in words.items()
                   if value not in (None, ""))
    try:
        connection = connect(dsn, driver=psycopg2)
    except CollectError as error:
        module.fail_json(msg=str(error))
    try:
        snapshot = collect(connection, top_n=params["top"],
                           statement_timeout_ms=params["statement_timeout_ms"])
        snapshot["missing_indexes"] = missing_indexes(connection, snapshot)
    finally:
        connection.close()
    module.exit_json(changed=False, snapshot=snapshot)


if __name__ == "__main__":
    main()
