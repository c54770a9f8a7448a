"""Exports: reports, messages, contacts, feedback, user devices and DHIS2 data value sets."""
