"""Facts are decoded with orjson where it reads JSON as the standard library does, and
with the standard library everywhere else: the decoded values are the same either way."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeledger.adapters.envelope import decode_json

SCALARS = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12)  # fmt: skip


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and repr(a) == repr(b)


@given(VALUES)
def test_any_json_decodes_as_the_standard_library_reads_it(value: Any) -> None:
    text = json.dumps(value).encode()
    assert same(decode_json(text), json.loads(text))


@pytest.mark.parametrize("text", [
    b'{"units":123456789012345678901234567890}',   # orjson would make it a float
    b'{"a":{"b":[1,18446744073709551616]}}',
    b'{"actor":"\\ud800"}',                        # a lone surrogate, escaped
    b'{"a":NaN}', b'{"a":1e400}', b'{"a":-Infinity}',
])  # fmt: skip
def test_what_orjson_reads_otherwise_is_read_by_the_standard_library(text: bytes) -> None:
    assert same(decode_json(text), json.loads(text))


@pytest.mark.parametrize("text", [b'{"a":', b"\xff\xfe", b"", b'{"a":1}x'])
def test_what_neither_reads_fails_as_the_standard_library_fails(text: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(text.decode(errors="strict")) if text != b"\xff\xfe" else text.decode()
    with pytest.raises(ValueError):
        decode_json(text)
