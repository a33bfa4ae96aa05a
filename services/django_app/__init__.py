"""Django service: one project, served as WSGI (Gunicorn) and as ASGI (Uvicorn).

The same HTTP contract as the Flask and FastAPI services, answered byte for byte like Flask's
(`gateway_common` builds every document and error). No database, no admin, no sessions: a
Django project reduced to URL routing, views and one middleware.

- `settings_env`: the server's settings from `DJANGO_*` variables (a typed dataclass);
- `django_settings`: Django's own settings module (static: nothing in it comes from the
  environment);
- `routes`: one table of routes, rendered as a WSGI URL table (`urls_wsgi`) and an ASGI one
  (`urls_asgi`); its docstring says why the two differ;
- `app`: the two entry points, `create_wsgi_app()` and `create_asgi_app()`;
- `gunicorn.conf.py` and `serve` start them.
"""
