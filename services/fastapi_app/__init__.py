"""fastapi_app."""
