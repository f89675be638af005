"""SCRAM-SHA-256 verifiers computed on the controller (plugins/filter/scram.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("scram_filter", ROOT / "plugins/filter/scram.py")
scram = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scram)

# What PostgreSQL 15 stored for the role "app" after ALTER ROLE ... PASSWORD 'molecule-db-password'.
POSTGRES_VERIFIER = (
    "SCRAM-SHA-256$4096:UEAVRuH9w33Aoq8dN/z5IA==$gVd9LbjTzqlSFqc+0udK3GOAbrEOBA5XPcoLNDPK5Tw="
    ":YciiPTDkLXaqOqCVOf+hPCeKA0yLVeVA3Y2YVJHQreI="
)


def test_same_password_and_salt_give_postgresqls_own_verifier():
    verifier = scram.scram_sha256_verifier("molecule-db-password", POSTGRES_VERIFIER)
    assert verifier == POSTGRES_VERIFIER


def test_a_changed_password_keeps_salt_and_count_but_not_the_keys():
    changed = scram.scram_sha256_verifier("another-password", POSTGRES_VERIFIER)
    assert changed != POSTGRES_VERIFIER
    assert changed.split("$")[1] == POSTGRES_VERIFIER.split("$")[1]


@pytest.mark.parametrize("current", [None, "", "md5d2c8b2b4a0f9", "not a verifier"])
def test_without_a_verifier_a_fresh_salt_is_drawn(current):
    first = scram.scram_sha256_verifier("s3cret", current)
    second = scram.scram_sha256_verifier("s3cret", current)
    assert scram.VERIFIER.match(first)
    assert first.startswith("SCRAM-SHA-256$4096:")
    assert first != second                          # a new random salt each time
    assert scram.scram_sha256_verifier("s3cret", first) == first


def test_a_given_salt_and_count_are_used():
    verifier = scram.scram_sha256_verifier("pencil", salt=b"0123456789abcdef", iterations=10000)
    assert verifier.startswith("SCRAM-SHA-256$10000:MDEyMzQ1Njc4OWFiY2RlZg==$")


@pytest.mark.parametrize(("password", "prepared"), [
    ("plain ascii", "plain ascii"),
    ("I\u00adX", "IX"),                  # soft hyphen is mapped to nothing
    ("\u2168", "IX"),                    # NFKC
    ("a\u00a0b", "a b"),                 # non-ASCII space becomes a space
    ("a\u0007b", "a\u0007b"),            # prohibited: PostgreSQL uses the raw string
])
def test_saslprep_as_postgresql_applies_it(password, prepared):
    assert scram.saslprep(password) == prepared


def test_an_empty_password_is_refused():
    with pytest.raises(ValueError, match="password"):
        scram.scram_sha256_verifier("")
