"""tornado_app."""
