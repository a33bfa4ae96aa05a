"""Django's settings module (DJANGO_SETTINGS_MODULE): a project reduced to routing and views.

Static on purpose: the server's settings (binds, workers, the variant) are read from the
environment by `django_app.settings_env`; nothing here depends on where the project runs.
"""

from __future__ import annotations

DEBUG = False
# No database, no installed apps (no admin, auth, sessions, contenttypes), no templates.
DATABASES: dict[str, dict[str, str]] = {}
INSTALLED_APPS: list[str] = []
TEMPLATES: list[dict[str, object]] = []
# Counts, times and logs every request; the only middleware (no CSRF: no forms, no cookies).
MIDDLEWARE = ["django_app.middleware.ObservabilityMiddleware"]
# Each entry point resolves with its own table (request.urlconf); this one is Django's
# fallback for anything that resolves without a request.
ROOT_URLCONF = "django_app.urls_wsgi"
# Nothing reads Host (no absolute URLs, no redirects): an empty list would refuse every
# Host as soon as something did, which is the safe default to keep.
ALLOWED_HOSTS: list[str] = []
USE_I18N = False
USE_TZ = True
# Logging is configured by the server (gunicorn's logconfig_dict, uvicorn's log_config) with
# the JSON formatter of gateway_common.logging; Django adds no handlers of its own.
LOGGING_CONFIG = None
