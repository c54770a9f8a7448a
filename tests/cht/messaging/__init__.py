"""Tests of the CHT messaging area."""
