"""Step load shape: users rise in stages, so the saturation knee shows in one run.

Opt-in (a shape class in the locustfile would override ``-u``/``-r`` of every run): set
``LOCUST_STEP_USERS``, e.g.::

    LOCUST_STEP_USERS=10,25,50,100 LOCUST_STEP_SECONDS=30 \\
        locust -f loadtests/locustfile.py --headless -H http://127.0.0.1:8080 --target asgi IoUser

``LOCUST_STEP_SECONDS`` (default 30) is the length of each stage, ``LOCUST_STEP_SPAWN_RATE``
(default 50 users/s) how fast a stage's users start. The test ends after the last stage.
"""

from __future__ import annotations

import os

from locust import LoadTestShape

from loadtests.settings import parse_steps


class StepLoadShape(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()
        self.steps = parse_steps(os.environ.get("LOCUST_STEP_USERS", "10,25,50,100"))
        self.step_seconds = float(os.environ.get("LOCUST_STEP_SECONDS", "30"))
        self.spawn_rate = float(os.environ.get("LOCUST_STEP_SPAWN_RATE", "50"))

    def tick(self):
        index = int(self.get_run_time() // self.step_seconds)
        if index >= len(self.steps):
            return None
        return self.steps[index], self.spawn_rate
