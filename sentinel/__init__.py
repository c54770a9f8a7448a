"""Jamii sentinel: follows the medic database's ``_changes`` and acts on documents."""
