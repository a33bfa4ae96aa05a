"""The bench's poll scenario against a server whose long-poll behaviour is known.

`tests/poll_standin.py` serves the long-poll contract under the registry's `flask` (capacity 2:
a waiting poll holds one of two slots, everything else queues) and `fastapi` (unbounded)
entries, and `flask-gevent` without the route. The bench, run as `make bench` runs it (a
subprocess: Locust monkey-patches the standard library), must count each message's receivers
within those capacities, read 200 and 204 apart, and call the missing route not applicable.
"""

from __future__ import annotations

import pytest

from gateway_common import variants
from tests.bench_process import bench_env, run_bench
from tests.poll_standin import PollStandIn

POLLERS = 6

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def poll_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("poll-bench")
    served = [variants.get(name) for name in ("flask", "fastapi", "flask-gevent")]
    env = bench_env(test_stack=False, LOCUST_METRICS_DISABLE="1")
    with PollStandIn(served, without_poll={"flask-gevent"}) as standin:
        run = run_bench(
            [
                "--url", standin.url, "--prometheus-url", "none",
                "--targets", "wsgi,asgi,flask-gevent", "--scenarios", "poll",
                "--users", f"poll={POLLERS}", "--warmup", "1", "--duration", "5",
                "--poll-rate", "4", "--poll-timeout-ms", "500",
            ],
            out,
            env,
            timeout_s=120,
        )  # fmt: skip
    return run.results, run.run_dir, run.stdout


def test_a_missing_route_is_not_applicable_and_the_others_are_measured(poll_run):
    results, _, stdout = poll_run
    assert results["schema"] == 3 and results["complete"] is True
    assert results["not_applicable"] == [
        {
            "scenario": "poll",
            "target": "flask-gevent",
            "reason": "flask-gevent has no /poll (HTTP 404)",
        }
    ]
    assert "poll on flask-gevent: not applicable" in stdout
    assert {s["target"] for s in results["steps"]} == {"wsgi", "asgi"}
    targets = results["meta"]["targets"]
    assert (targets["wsgi"]["prefix"], targets["wsgi"]["capacity"]) == ("/wsgi", 2)
    assert targets["asgi"]["capacity"] is None
    for block in results["blocks"]:
        # Each poll and each publish counted once started, at most once completed.
        assert block["client"]["completed"] <= block["client"]["started"]


def test_each_message_reaches_at_most_the_polls_a_variant_can_hold(poll_run):
    results, _, _ = poll_run
    steps = {s["target"]: s for s in results["steps"]}
    for target, step in steps.items():
        p = step["poll"]
        # Every poll answered in the window is a 200 with the bench's message or a 204.
        assert p["answered"] == step["requests"] == p["with_message"] + p["timed_out"], target
        assert step["failures"] == 0, step["errors"]
    wsgi, asgi = steps["wsgi"]["poll"], steps["asgi"]["poll"]
    # Two slots: no message ever found more than two polls waiting (the publisher's own POST
    # takes a slot too) ...
    assert wsgi["answered"] > 0
    assert wsgi["held_max"] is None or wsgi["held_max"] <= 2
    # ... where the unbounded variant holds every poller, so messages find more than two.
    assert asgi["published"] > 0 and asgi["with_message"] > 0
    assert 2 < asgi["held_mean"] <= asgi["held_max"] <= POLLERS
    assert asgi["delivery_p50_ms"] <= asgi["delivery_p95_ms"]
    assert steps["asgi"]["ideal_rps"] == pytest.approx(POLLERS / 0.25)  # 6 held / 250 ms


def test_the_report_has_the_long_polling_table(poll_run):
    _, run_dir, stdout = poll_run
    md = (run_dir / "report.md").read_text()
    assert "### Long polling: what a waiting poll holds" in md
    assert "| wsgi | 6 | 2 |" in md and "| asgi | 6 | unbounded |" in md
    assert (run_dir / "plots" / "poll.png").read_bytes()[:4] == b"\x89PNG"
    assert "Long polling:" in stdout
