"""Comparing the plan's Redis settings with one CONFIG GET, and setting the changes in one line."""

from __future__ import annotations

import pytest

from stacktune.live import redis_config_changes, redis_config_set_line

PLANNED = {
    "maxmemory": "819mb",
    "maxmemory-policy": "allkeys-lru",
    "save": '""',
    "proto-max-bulk-len": "51mb",
    "client-output-buffer-limit": "normal 106954752 53477376 10 slave 268435456 67108864 60 "
                                  "pubsub 33554432 8388608 60",
    "tcp-backlog": "511",
}

# redis-cli's lines for CONFIG GET of those names, on a server that runs the plan
# (Redis reports sizes in bytes and its own order).
CONVERGED = [
    "tcp-backlog", "511",
    "maxmemory-policy", "allkeys-lru",
    "client-output-buffer-limit", "normal 106954752 53477376 10 slave 268435456 67108864 60 "
                                  "pubsub 33554432 8388608 60",
    "proto-max-bulk-len", "53477376",
    "maxmemory", "858783744",
    "save", "",
]


def test_a_converged_server_needs_no_change():
    assert redis_config_changes(PLANNED, CONVERGED) == {}


def test_a_trimmed_empty_last_value_still_pairs():
    # The command module trims the output's trailing empty line: save's empty value.
    assert redis_config_changes(PLANNED, CONVERGED[:-1]) == {}


def test_drifted_and_missing_settings_are_the_changes():
    drifted = list(CONVERGED)
    drifted[drifted.index("maxmemory") + 1] = "104857600"
    drifted[drifted.index("save") + 1] = "3600 1 300 100 60 10000"
    drifted[drifted.index("maxmemory-policy") + 1] = "noeviction"
    del drifted[:2]  # tcp-backlog not reported
    assert redis_config_changes(PLANNED, drifted) == {
        "maxmemory": "819mb", "save": "", "maxmemory-policy": "allkeys-lru",
        "tcp-backlog": "511"}


def test_one_config_set_line_quotes_every_word():
    line = redis_config_set_line({"save": "", "maxmemory": "819mb", "x": 'a "b" \\c'})
    assert line == ('"CONFIG" "SET" "maxmemory" "819mb" "save" "" "x" "a \\"b\\" \\\\c"')


def test_a_line_break_is_refused():
    with pytest.raises(ValueError, match="line break"):
        redis_config_set_line({"save": "1 1\nFLUSHALL"})
