from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from relay.errors import BadPush, UnsupportedMediaType
from relay.pushes import read_push

pytestmark = pytest.mark.fast


def test_readers_agree_across_content_types() -> None:
    """The same fields come out of a form, JSON, multipart, text/plain and a query string."""
    expected = {"events": "mo", "content": "你好 & bye", "app": "1"}
    form = "events=mo&content=%E4%BD%A0%E5%A5%BD+%26+bye&app=1"
    multipart = (
        "--b\r\nContent-Disposition: form-data; name=\"events\"\r\n\r\nmo\r\n"
        "--b\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\n你好 & bye\r\n"
        "--b\r\nContent-Disposition: form-data; name=\"app\"\r\n\r\n1\r\n--b--\r\n"
    ).encode()
    form_type = "application/x-www-form-urlencoded"
    assert read_push("POST", form_type, form.encode(), "", 50) == expected
    as_json = '{"events":"mo","content":"你好 & bye","app":"1"}'.encode()
    assert read_push("POST", "application/json; charset=utf-8", as_json, "", 50) == expected
    assert read_push("POST", "multipart/form-data; boundary=b", multipart, "", 50) == expected
    assert read_push("POST", "text/plain", form.encode(), "", 50) == expected
    assert read_push("GET", "", b"", form, 50) == expected


@pytest.mark.parametrize(("content_type", "body", "message"), [
    ("application/json", b'{"a": 1, "a": 2}', "a: given more than once"),
    ("application/json", b'{"a": {"b": 1}}', "a: must be a plain value"),
    ("application/json", b"[" * 100000, "nested too deeply"),
    ("application/x-www-form-urlencoded", b"a=%FF", "not valid UTF-8"),
    ("application/x-www-form-urlencoded", b"&".join(b"f%d=1" % i for i in range(60)),
     "more than 50 fields"),
    ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data; name=\"a\"",
     "multipart body"),
    ("multipart/form-data", b"x", "without a boundary"),
])
def test_unreadable_bodies_are_400(content_type: str, body: bytes, message: str) -> None:
    """Each malformed body is a BadPush naming the problem."""
    with pytest.raises(BadPush) as info:
        read_push("POST", content_type, body, "", 50)
    assert message in info.value.problems[0]


def test_unknown_content_type_is_415() -> None:
    """Only the four content types SUBMAIL uses are read."""
    with pytest.raises(UnsupportedMediaType):
        read_push("POST", "application/xml", b"<a/>", "", 50)
    with pytest.raises(UnsupportedMediaType):
        read_push("POST", "", b"a=1", "", 50)


def test_json_surrogates_and_constants_are_refused() -> None:
    """Lone surrogate escapes and NaN/Infinity are not a push SUBMAIL sends: 400."""
    with pytest.raises(BadPush, match="surrogate"):
        read_push("POST", "application/json", b'{"content": "\\ud800"}', "", 50)
    with pytest.raises(BadPush, match="surrogate"):
        read_push("POST", "application/json", b'{"\\udfff": "x"}', "", 50)
    with pytest.raises(BadPush, match="NaN"):
        read_push("POST", "application/json", b'{"app": NaN}', "", 50)
    assert read_push("POST", "application/json", b'{"c": "\\ud83d\\ude00"}', "", 50) == {
        "c": "\U0001f600"}


def _utf8(text: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _multipart(fields: dict[str, str], boundary: str) -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n'
             f"Content-Type: text/plain; charset=utf-8\r\n\r\n{v}\r\n" for k, v in fields.items()]
    return ("preamble\r\n" + "".join(parts) + f"--{boundary}--\r\nepilogue").encode()


@given(st.dictionaries(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
                       st.text(max_size=40).filter(_utf8), max_size=12),
       st.sampled_from(["b", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a'b()+_,-./:=?"]))
def test_multipart_round_trip(fields: dict[str, str], boundary: str) -> None:
    """Any fields, values with CR, LF, dashes or Chinese included, come back unchanged."""
    assume(not any(f"--{boundary}" in v for v in fields.values()))  # as every encoder does
    body = _multipart(fields, boundary)
    if not fields:
        with pytest.raises(BadPush, match="no fields"):
            read_push("POST", f'multipart/form-data; boundary="{boundary}"', body, "", 50)
        return
    assert read_push("POST", f'multipart/form-data; boundary="{boundary}"', body, "", 50) \
        == fields


@pytest.mark.parametrize(("body", "message"), [
    (b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b-', "truncated"),
    (b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n', "truncated"),
    (b'--b\r\nContent-Disposition: form-data; name="a"; filename="x.txt"\r\n\r\n1\r\n--b--',
     "file parts are not accepted"),
    (b'--b\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b--', "without a field name"),
    (b'--b\r\nContent-Type: text/plain\r\n\r\n1\r\n--b--', "without a field name"),
    (b'--b\r\nContent-Disposition: form-data; name="a"\r\nContent-Transfer-Encoding: base64'
     b'\r\n\r\nMQ==\r\n--b--', "transfer encoding 'base64'"),
    (b'--b\r\nbroken header\r\n\r\n1\r\n--b--', "header cannot be read"),
    (b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xff\r\n--b--', "not valid UTF-8"),
    (b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'
     b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n2\r\n--b--', "more than once"),
    (b"--b--", "no fields"),
    (b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n1\r\n' % i
              for i in range(51)) + b"--b--", "more than 50 fields"),
])
def test_malformed_multipart_is_400(body: bytes, message: str) -> None:
    with pytest.raises(BadPush) as info:
        read_push("POST", "multipart/form-data; boundary=b", body, "", 50)
    assert message in "; ".join(info.value.problems)
