"""A service's settings under construction: values in the service's syntax, each with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Section:
    service: str
    values: dict[str, object] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def set(self, name: str, value: object, reason: str) -> None:
        self.values[name] = value
        self.reasons[name] = reason
