"""Tests of the Foci API."""
