"""The Foci API: malaria case clusters (polygons) and cases (points) per country, and their recount."""
