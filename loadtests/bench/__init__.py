"""The WSGI-vs-ASGI bench: ``python -m loadtests.bench --help``.

Modules: ``options`` (profiles, flags, environment variables), ``analysis`` (the report maths,
pure), ``driver`` (runs Locust; imports gevent), ``prom`` (Prometheus API), ``report``
(Markdown/HTML/plots), ``cli`` (the entry point). Importing this package imports none of them.
"""
