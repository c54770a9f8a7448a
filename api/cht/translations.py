"""CHT's translation docs (``messages-<locale>``) as the API reads them: ``generic`` overridden by ``custom``."""

from __future__ import annotations

from typing import Any, Mapping

from api.couch import Database


async def translations(db: Database, locale: str) -> dict[str, str]:
    """The texts of a locale; empty when there is no such doc."""
    doc = await db.get_or_none(f"messages-{locale}")
    if not doc:
        return {}
    merged: dict[str, str] = {}
    for part in ("generic", "custom"):
        values = doc.get(part)
        if isinstance(values, Mapping):
            merged.update({k: v for k, v in values.items() if isinstance(v, str)})
    return merged


def render(text: str, values: Mapping[str, Any]) -> str:
    """``{{name}}`` placeholders filled as CHT's templates fill them (a list is written comma-separated)."""
    for name, value in values.items():
        shown = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        text = text.replace("{{" + name + "}}", shown)
    return text
