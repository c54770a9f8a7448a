"""Reports: reads and the report search that exports and the report API share."""
