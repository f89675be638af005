"""SCRAM-SHA-256 verifiers computed on the controller.

PostgreSQL stores a password as ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``
(RFC 5802, RFC 7677; PostgreSQL's src/common/scram-common.c). Handing PostgreSQL
that verifier instead of the password keeps the password out of every statement,
hence out of pg_stat_statements and the server log. Reusing the salt and the
iteration count of the verifier a role already has makes the result identical
when the password did not change, so community.postgresql.postgresql_user (which
compares a verifier with pg_authid.rolpassword as a string) changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import stringprep
import unicodedata

SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations, PostgreSQL 16+)
SCRAM_SALT_BYTES = 16  # PostgreSQL's SCRAM_DEFAULT_SALT_LEN
VERIFIER = re.compile(
    r"^SCRAM-SHA-256\$(?P<iterations>\d+):(?P<salt>[A-Za-z0-9+/=]+)"
    r"\$(?P<stored_key>[A-Za-z0-9+/=]+):(?P<server_key>[A-Za-z0-9+/=]+)$"
)


def saslprep(password: str) -> str:
    """SASLprep (RFC 4013) as PostgreSQL applies it; the password as-is where it does not apply.

    PostgreSQL (pg_saslprep) uses the raw bytes when the string is not valid for
    SASLprep (prohibited characters, bidi rule), rather than refusing it.
    """
    if all(" " <= char <= "~" for char in password):
        return password
    mapped = "".join(" " if stringprep.in_table_c12(c) else c
                     for c in password if not stringprep.in_table_b1(c))
    normalized = unicodedata.normalize("NFKC", mapped)
    if not normalized:
        return password
    prohibited = (stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3,
                  stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6,
                  stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
                  stringprep.in_table_a1)
    if any(check(char) for char in normalized for check in prohibited):
        return password
    if any(stringprep.in_table_d1(char) for char in normalized):
        if any(stringprep.in_table_d2(char) for char in normalized):
            return password
        if not (stringprep.in_table_d1(normalized[0]) and stringprep.in_table_d1(normalized[-1])):
            return password
    return normalized


def scram_sha256_verifier(password: str, current: str | None = None,
                          salt: bytes | None = None, iterations: int | None = None) -> str:
    """The SCRAM-SHA-256 verifier of ``password``.

    Salt and iteration count come from ``current`` (the role's pg_authid.rolpassword)
    when it is a SCRAM verifier, else from the arguments, else a new random salt and
    PostgreSQL's default count.
    """
    if not isinstance(password, str) or not password:
        raise ValueError("scram_sha256_verifier: the password must be a non-empty string")
    match = VERIFIER.match(current or "")
    if match:
        salt = base64.b64decode(match["salt"])
        iterations = int(match["iterations"])
    salt = salt if salt is not None else os.urandom(SCRAM_SALT_BYTES)
    iterations = iterations or SCRAM_ITERATIONS
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def scram_verifier_filter(password: str, current: str | None = None) -> str:
    """Jinja filter: ``password | stacktune_scram_verifier(current_rolpassword)``."""
    return scram_sha256_verifier(password, current)


class FilterModule:
    def filters(self):
        return {"stacktune_scram_verifier": scram_verifier_filter}
