"""Hostile JSON bodies: whatever a client makes the parser do, the answer is a clear 4xx.

Each class below got a 500 from both services before `gateway_common.strict_json`
(deep nesting, lone surrogates) or was accepted where another parser would disagree
(duplicate keys, 1e999). The hypothesis tests generate JSON *text* from a hostile grammar,
so they find these classes by themselves rather than only the listed examples.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from service_clients import ServiceClient

from gateway_common import strict_json, validation
from gateway_common.errors import ApiError
from tests.hostile_json import DEPTH, DIGITS, HOSTILE_BODIES, HOSTILE_JSON


@pytest.mark.parametrize(
    ("name", "body", "says"), HOSTILE_BODIES, ids=[c[0] for c in HOSTILE_BODIES]
)
def test_hostile_body_is_a_clear_400(client: ServiceClient, name: str, body: bytes, says: str):
    answer = client.request(
        "POST", "/echo", body=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status == 400, (name, answer.body[:200])
    error = answer.json()["error"]
    assert error["code"] == "malformed_json"
    assert says.lower() in error["message"].lower(), error["message"]


def test_what_the_bounds_still_accept(client: ServiceClient):
    # Valid surrogate pairs are one character; a body nested exactly DEPTH deep is parsed
    # (and then refused for its shape, 422); integers of DIGITS digits are numbers.
    pair = client.request(
        "POST",
        "/echo",
        body=b'{"message":"\\ud83d\\ude00"}',
        headers={"Content-Type": "application/json"},
    )
    assert (pair.status, pair.json()["echo"]["message"]) == (200, "\N{GRINNING FACE}")
    nested = b'{"message":' + b"[" * (DEPTH - 1) + b"]" * (DEPTH - 1) + b"}"
    digits = b'{"message":' + b"9" * DIGITS + b"}"
    for body in (nested, digits):
        answer = client.request(
            "POST", "/echo", body=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status == 422, answer.body[:200]


def test_nesting_depth_skips_brackets_inside_strings():
    assert strict_json.nesting_depth('{"a": "[[[[", "b": [1, {"c": "}}"}]}') == 3
    assert strict_json.nesting_depth('"\\"[[["') == 0
    assert strict_json.nesting_depth("17") == 0


FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # the apps hold no state between examples
    ],
)


@settings(FUZZ, max_examples=400)
@given(text=HOSTILE_JSON)
def test_parser_either_returns_a_writable_document_or_a_400(text: str):
    try:
        document = validation.parse_json_body(text.encode("utf-8", "surrogatepass"))
    except ApiError as error:
        assert (error.status, error.code) == (400, "malformed_json")
        return
    # What was accepted can be written back as UTF-8 JSON (a response, a log line).
    json.dumps(document, ensure_ascii=False).encode("utf-8")
    assert strict_json.nesting_depth(json.dumps(document)) <= DEPTH


@settings(FUZZ, max_examples=60)
@given(text=HOSTILE_JSON)
def test_services_answer_hostile_json_alike_and_never_500(
    flask_client: ServiceClient, fastapi_client: ServiceClient, text: str
):
    body = text.encode("utf-8", "surrogatepass")
    headers = {"Content-Type": "application/json"}
    answers = [
        c.request("POST", "/echo", body=body, headers=headers)
        for c in (flask_client, fastapi_client)
    ]
    assert answers[0].status in (200, 400, 422), answers[0].body[:200]
    assert [a.status for a in answers] == [answers[0].status] * 2
    assert answers[0].json().get("error") == answers[1].json().get("error")
