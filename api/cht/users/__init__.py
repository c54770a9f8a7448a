"""Users: reads, creation (one, many, CSV), updates, deletion, token login and users-info."""
