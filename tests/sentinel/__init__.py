"""Tests of the sentinel worker."""
