"""Only the tested distribution releases are accepted."""

from __future__ import annotations

import pytest

from stacktune.model import PlanError
from stacktune.platforms import check_supported_release


@pytest.mark.parametrize(("os_id", "version"), [("debian", "12"), ("debian", "13"),
                                                ("debian", ""), ("debian", "14")])
def test_tested_and_newer_debian_releases_pass(os_id, version):
    check_supported_release("db1", os_id, version)


@pytest.mark.parametrize("version", ["11", "10", "11.9"])
def test_an_older_debian_release_is_refused_naming_the_host_and_the_fix(version):
    with pytest.raises(PlanError) as error:
        check_supported_release("db1", "debian", version)
    message = str(error.value)
    assert f"host 'db1' runs Debian {version}" in message
    assert "Debian 12 (bookworm) and 13 (trixie)" in message
    assert "upgrade db1" in message
