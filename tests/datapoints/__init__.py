"""Tests of the Datapoints API."""
