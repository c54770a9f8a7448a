"""Tests of the CHT contacts area."""
