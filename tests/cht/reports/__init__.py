"""Tests of the CHT reports area."""
