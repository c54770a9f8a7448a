"""CHT's monitoring figures (``/api/v{1,2}/monitoring``) and the Prometheus exposition."""
