"""``python -m api``: run the API server."""

from .app import main

main()
