"""Which PostgreSQL major the plan is for: pinned, installed, or the distribution's."""

from __future__ import annotations

import pytest

from stacktune.model import PlanError
from stacktune.pg_version import PgHost, distro_version, planned_pg_version

DEBIAN = {"11": 13, "12": 15, "13": 17}


def db(name="db1", installed=(), os_version="12"):
    return PgHost(name=name, os_label=f"debian {os_version}", installed=tuple(installed),
                  distro_version=distro_version(DEBIAN, os_version))


def test_pgdg_major_installed_on_debian_12_is_kept():
    assert planned_pg_version(None, [db(installed=[16])]) == (16, "installed on db1")


def test_fresh_host_gets_the_distribution_major():
    assert planned_pg_version(None, [db(os_version="12")])[0] == 15
    assert planned_pg_version(None, [db(os_version="13")])[0] == 17


def test_pinned_version_wins_over_what_is_installed():
    assert planned_pg_version(16, [db(installed=[15, 16])]) == (16, "stacktune_pg_version")


def test_two_majors_on_one_host_need_stacktune_pg_version():
    with pytest.raises(PlanError,
                       match=r"'db1' has PostgreSQL 15, 16 installed; set stacktune_pg_version"):
        planned_pg_version(None, [db(installed=[16, 15])])


def test_database_hosts_that_disagree_need_stacktune_pg_version():
    with pytest.raises(PlanError, match=r"15 on db2; 16 on db1\); set stacktune_pg_version"):
        planned_pg_version(None, [db("db1", installed=[16]), db("db2")])


def test_unknown_release_without_postgresql_needs_stacktune_pg_version():
    with pytest.raises(PlanError, match=r"'db1' gets \(debian 99\); set stacktune_pg_version"):
        planned_pg_version(None, [db(os_version="99")])


def test_no_database_host():
    assert planned_pg_version(None, [])[0] == 15
