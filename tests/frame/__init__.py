"""Tests of the frame every API shares."""
