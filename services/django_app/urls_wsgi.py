"""The URL table of the WSGI entry point (Gunicorn): plain `def` views (`django_app.routes`)."""

from __future__ import annotations

from django_app import routes, views
from django_app.settings_env import WSGI

urlpatterns = routes.urlpatterns(WSGI)

# Django's own errors (a request it cannot read, no route, an unhandled exception).
handler400 = views.bad_request
handler404 = views.not_found
handler500 = views.server_error
