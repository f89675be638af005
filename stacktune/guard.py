"""Checks on text and numbers that come from people: one place for the CLI, the Ansible plugin,
the override catalogue and the template filters.

Config files are line-based: a line break or other control character in a value that reaches a
template would end the line and start one of the user's choosing (`listen_addresses = '*'` in
postgresql.conf, `import os` in a Python settings module). Numbers are read in ASCII only:
Python's int() and float() also accept Arabic-Indic or fullwidth digits, '1_000', 'nan' and
'inf', which no service's config parser reads the same way.
"""

from __future__ import annotations

import math
import re
import unicodedata

from stacktune.model import PlanError
from stacktune.units import TiB, UnitError, human_bytes, parse_human_size

# Bounds on what people may ask for: beyond them the input is a typo, and planning it would
# take memory or time for nothing (the CLI builds one Host per app host).
MAX_CPUS = 4096
MAX_MEMORY_BYTES = 1024 * TiB
MAX_APP_HOSTS = 1000
MAX_CONNECTIONS = 262_143  # PostgreSQL's MAX_BACKENDS: no server accepts more

# Host names and similar labels: letters, digits, dot, dash, underscore (RFC 1123 plus '_',
# which inventories use), at most 253 characters like a DNS name.
NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})", re.ASCII)
INTEGER_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)
DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
# Longer numbers are typos or attacks; 30 digits exceed every bound the engine uses.
MAX_DIGITS = 30


class UnsafeText(PlanError):
    """A value holds a character that would break the line-based file it is written into."""


def unsafe_character(text: str) -> str | None:
    """The first control, line or paragraph separator character of text, if any."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char != " ":
            return char
    return None


def check_line(name: str, value: object) -> str:
    """value as one line of text; UnsafeText (naming `name`) if it holds a control character."""
    text = str(value)
    bad = unsafe_character(text)
    if bad is not None:
        raise UnsafeText(f"{name} = {text!r}: control character {bad!r} (U+{ord(bad):04X}) "
                         "cannot be written into a config file; remove it")
    return text


def check_name(name: str, value: object) -> str:
    """A host name or similar label: letters, digits, '.', '-', '_'."""
    text = str(value)
    if not NAME_RE.fullmatch(text):
        raise PlanError(f"{name} = {text!r}: use 1 to 253 ASCII letters, digits, '.', '-' or "
                        "'_', starting with a letter or digit")
    return text


def ascii_integer(name: str, value: object, minimum: int, maximum: int) -> int:
    """An integer written with ASCII digits, within [minimum, maximum]."""
    if isinstance(value, bool):
        raise PlanError(f"{name} = {value!r}: expected a whole number from {minimum} to {maximum}")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not INTEGER_RE.fullmatch(text) or len(text) > MAX_DIGITS:
            raise PlanError(f"{name} = {str(value)!r}: expected a whole number from {minimum} to "
                            f"{maximum}, in ASCII digits")
        number = int(text)
    if not minimum <= number <= maximum:
        raise PlanError(f"{name} = {number}: expected a whole number from {minimum} to {maximum}")
    return number


def ascii_decimal(name: str, value: object, minimum: float, maximum: float,
                  exclusive_minimum: bool = False) -> float:
    """A finite decimal number written with ASCII digits (no exponent, NaN or infinity)."""
    wanted = (f"a number {'above' if exclusive_minimum else 'from'} {minimum:g} "
              f"{'up to' if exclusive_minimum else 'to'} {maximum:g}")
    if isinstance(value, bool):
        raise PlanError(f"{name} = {value!r}: expected {wanted}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        if not DECIMAL_RE.fullmatch(text) or len(text) > MAX_DIGITS:
            raise PlanError(f"{name} = {str(value)!r}: expected {wanted}, in ASCII digits "
                            "(like 2 or 1.5)")
        number = float(text)
    too_low = number <= minimum if exclusive_minimum else number < minimum
    if not math.isfinite(number) or too_low or number > maximum:
        raise PlanError(f"{name} = {value}: expected {wanted}")
    return number


def human_size(name: str, value: object, maximum: int = MAX_MEMORY_BYTES) -> int:
    """Bytes of a size such as 4GiB, at most ``maximum``; the error names ``name``."""
    try:
        size = parse_human_size(str(value))
    except UnitError as error:
        raise PlanError(f"{name}: {error}") from None
    if size > maximum:
        raise PlanError(f"{name} = {value!r}: expected at most {human_bytes(maximum)}")
    return size


def check_word(name: str, value: object) -> str:
    """One field of a whitespace-separated line (pg_hba.conf, a Redis ACL rule): no blanks."""
    text = check_line(name, value)
    if not text or any(char.isspace() for char in text):
        raise UnsafeText(f"{name} = {text!r}: expected one word without spaces (a space would "
                         "start another field of the line); remove them")
    return text


# Inventory variables of the service roles that reach a config file, by the check they need.
# The plan play checks them (when the inventory sets them) before any host changes; the
# templates guard them again when they render.
DEPLOYMENT_WORDS = (
    "postgresql_app_database", "postgresql_app_user", "pgbouncer_app_database",
    "pgbouncer_app_user", "pgbouncer_admin_user", "pgbouncer_stats_user", "redis_app_user",
    "redis_admin_user", "redis_app_key_prefix", "django_settings_db_name",
    "django_settings_db_user", "gunicorn_bind",
)
DEPLOYMENT_LINES = ("postgresql_listen_addresses", "pgbouncer_listen_addr", "redis_bind")
DEPLOYMENT_WORD_LISTS = ("postgresql_app_networks", "pgbouncer_app_networks",
                         "django_settings_allowed_hosts")


def check_deployment_vars(host: str, variables: dict[str, object]) -> None:
    """Refuse inventory strings that would inject or shift lines in the deployed files."""
    for name in DEPLOYMENT_WORDS:
        if variables.get(name) is not None:
            check_word(f"host {host!r}: {name}", variables[name])
    for name in DEPLOYMENT_LINES:
        if variables.get(name) is not None:
            check_line(f"host {host!r}: {name}", variables[name])
    for name in DEPLOYMENT_WORD_LISTS:
        items = variables.get(name)
        if items is None:
            continue
        if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
            raise PlanError(f"host {host!r}: {name} = {items!r}: expected a list")
        for item in items:
            check_word(f"host {host!r}: {name}", item)
