"""Hostile JSON, shared by the unit tests (both apps in-process) and the reliability tests
(both services through nginx): a list of known classes and a grammar that generates more.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

from gateway_common import validation

DEPTH = validation.JSON_MAX_DEPTH
DIGITS = validation.JSON_MAX_INT_DIGITS

# (name, body, what the message says); every one is 400 malformed_json in both services.
HOSTILE_BODIES = [
    ("deep arrays", b"[" * 60_000, "nest"),
    ("deep objects", b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "nest"),
    ("one level too deep", b'{"message":' + b"[" * DEPTH + b"]" * DEPTH + b"}", "nest 33 deep"),
    ("lone high surrogate", b'{"message":"\\ud800"}', "surrogate"),
    ("lone low surrogate in a tag", b'{"message":"m","tags":["\\uDFFF"]}', "surrogate"),
    ("lone surrogate in a key", b'{"\\udc00":1}', "surrogate"),
    ("huge integer", b'{"message":' + b"9" * 5_000 + b"}", "5000 digits"),
    ("integer one digit too long", b'{"message":-' + b"1" * (DIGITS + 1) + b"}", "digits"),
    ("float overflowing to infinity", b'{"message":1e999}', "out of range"),
    ("NaN", b'{"message":NaN}', "NaN"),
    ("-Infinity", b'{"message":-Infinity}', "Infinity"),
    ("duplicate key", b'{"message":"a","message":"b"}', "duplicate key 'message'"),
    ("invalid UTF-8", b'{"message":"\xff"}', "utf-8"),
    ("UTF-8-encoded surrogate", b'{"message":"\xed\xa0\x80"}', "utf-8"),
    ("UTF-8 byte order mark", b'\xef\xbb\xbf{"message":"a"}', "BOM"),
    ("UTF-16", '{"message":"a"}'.encode("utf-16"), "utf-8"),
    ("empty body", b"", "Expecting value"),
    ("trailing garbage", b'{"message":"a"} x', "Extra data"),
    ("unterminated string of escapes", b'"' + b'\\"' * 20_000, "Unterminated"),
]


# A grammar of JSON text that favours what parsers trip on.
_ESCAPES = st.one_of(st.integers(0xD800, 0xDFFF), st.integers(0, 0xFFFF)).map(
    lambda cp: f"\\u{cp:04x}"
)
_PLAIN = st.text(max_size=4).map(lambda text: json.dumps(text)[1:-1])
_STRINGS = st.lists(st.one_of(_ESCAPES, _PLAIN), max_size=3).map(lambda p: '"' + "".join(p) + '"')
_KEYS = st.one_of(st.sampled_from(['"message"', '"tags"']), _STRINGS)
_NUMBERS = st.one_of(
    st.integers(1, 6_000).map(lambda n: "9" * n),
    st.integers().map(str),
    st.floats(allow_nan=False).map(repr),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "-0"]),
)
_SCALARS = st.one_of(_STRINGS, _NUMBERS, st.sampled_from(["true", "false", "null"]))
_DEEP = st.tuples(st.integers(1, 3_000), st.sampled_from([("[", "]"), ('{"a":', "}")])).map(
    lambda t: t[1][0] * t[0] + "0" + t[1][1] * t[0]
)
HOSTILE_JSON = st.recursive(
    st.one_of(_SCALARS, _DEEP),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(_KEYS, inner), max_size=4).map(
            lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=8,
)
