"""Tests of the CHT users area."""
