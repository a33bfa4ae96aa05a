"""flask_app."""
