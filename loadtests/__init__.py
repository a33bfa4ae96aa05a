"""Load tests for gateway-lab: Locust scenarios (``locustfile.py``) and the bench (``bench/``).

Importing this package must stay cheap and side-effect free: the bench's report maths is unit
tested without Locust (whose import monkey-patches the standard library with gevent).
"""
