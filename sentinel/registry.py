"""Which transitions exist, in the fixed order they run."""

from __future__ import annotations

from .transitions import Transition


def medic_transitions() -> list[Transition]:
    """Transitions on the medic database's feed, in order."""
    return []
