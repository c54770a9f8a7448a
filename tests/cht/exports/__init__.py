"""Tests of the CHT exports area."""
