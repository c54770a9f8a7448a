"""Tests of the Spatial units API."""
