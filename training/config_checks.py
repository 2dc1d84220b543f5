"""Shared helpers of the typed config objects: one ValueError listing every problem."""

from __future__ import annotations

import dataclasses
from typing import Any


def raise_if(problems: list[str], what: str) -> None:
    """Raise one ``ValueError`` naming ``what`` and every problem, if there is any."""
    if problems:
        raise ValueError(f"invalid {what}: " + "; ".join(problems))


def unknown_keys(cls: type, data: dict[str, Any]) -> None:
    """Refuse keys that are not fields of the dataclass ``cls`` (typos must not pass silently)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}; known keys are {sorted(known)}")
