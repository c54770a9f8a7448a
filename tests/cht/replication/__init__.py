"""Tests of the CHT replication area."""
