"""A finding: one problem the report names, with the server's numbers and the concrete fix.

The shape is shared by every analysis (slow queries, indexes, N+1, vacuum, settings):

    {"kind": str, "severity": "high" | "medium" | "low", "title": str,
     "evidence": {...numbers from the server, JSON-able...},
     "fix": str (the SQL statement or the setting to change),
     "objects": {"table": "public.x", "column": "y", "queryid": "...", "view": "..."}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

Severity = Literal["high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low")


class Finding(TypedDict):
    kind: str
    severity: Severity
    title: str
    evidence: dict[str, Any]
    fix: str
    objects: dict[str, Any]


@dataclass(frozen=True)
class FindingData:
    """A typed way to build a Finding; ``to_dict()`` gives the shared dict shape."""

    kind: str
    severity: Severity
    title: str
    fix: str
    evidence: dict[str, Any] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r}: use one of {', '.join(SEVERITIES)}")

    def to_dict(self) -> Finding:
        return Finding(kind=self.kind, severity=self.severity, title=self.title,
                       evidence=dict(self.evidence), fix=self.fix, objects=dict(self.objects))


def finding(kind: str, severity: Severity, title: str, fix: str,
            evidence: dict[str, Any] | None = None,
            objects: dict[str, Any] | None = None) -> Finding:
    """A Finding dict, its severity checked."""
    return FindingData(kind, severity, title, fix, evidence or {}, objects or {}).to_dict()


def by_severity(findings: list[Finding]) -> list[Finding]:
    """Findings ordered high, medium, low (stable within a severity)."""
    return sorted(findings, key=lambda f: SEVERITIES.index(f["severity"]))
