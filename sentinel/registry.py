"""Which transitions exist, in the fixed order they run.

The order matters: short ids first (registrations and SMS name contacts by
them), then the sender is attached (``update_clinics``), then the
transitions that read the sender and the patient, and ``resolve_pending``
last, after every transition that adds messages.
"""

from __future__ import annotations

from .transitions import (
    Transition,
    accept_patient_reports,
    death_reporting,
    default_responses,
    generate_shortcode_on_contacts,
    muting,
    registration,
    resolve_pending,
    update_clinics,
    update_sent_by,
)


def medic_transitions() -> list[Transition]:
    """Transitions on the medic database's feed, in order."""
    return [
        generate_shortcode_on_contacts.transition,
        update_clinics.transition,
        registration.transition,
        accept_patient_reports.transition,
        default_responses.transition,
        update_sent_by.transition,
        death_reporting.transition,
        muting.transition,
        resolve_pending.transition,
        # foci_recount runs on its own feed (the foci database): sentinel/foci_feed.py, wired in build().
    ]
