"""Whole-server suites: fuzzing, bad input, outages, API crashes and load."""
