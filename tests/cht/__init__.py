"""Tests of the CHT API; one folder per area, the shared vocabulary at this level."""
