"""The Spatial units API: organizations, projects, members and GeoJSON spatial units."""
