"""Contacts, people and places: reads, writes, hydration, contacts by phone and bulk delete."""
