"""Conditional requests and ranges, parsed strictly as RFC 9110 says.

Entity tags are compared whole; numbers are ASCII digits of bounded length; an invalid
``Range`` is ignored (a 200), an unsatisfiable one is a 416.
"""

import pytest
from fastapi.testclient import TestClient

import core
from core.handlers.blob import _byte_range, _satisfiable
from core.handlers.headers import (
    IfMatch,
    expected_revision,
    none_match,
    parse_if_match,
    parse_number,
)

DAG = {"nodes": {"orders": {"deps": []}}}
HUGE = "9" * 5000  # past the 4300 digits Python's int() accepts


@pytest.mark.parametrize(
    ("header", "revisions"),
    [
        ('"3"', (3,)),
        ("3", (3,)),
        ('  "3"\t', (3,)),
        ('"3", "5"', (3, 5)),
        ('"3",W/"4" ,, "3"', (3,)),
        (', "0" ,', (0,)),
        ('"03"', ()),  # this server sends "3": a leading zero names no revision it sent
        ('"0004"', ()),
        ("05", ()),
        ('"00"', ()),
        ('"03", "3"', (3,)),
        ('W/"3"', ()),  # a weak tag never matches under If-Match
        ('w/"3"', None),  # "W/" is case-sensitive
        ('"abc"', ()),
        ('"3a"', ()),
        ('"²"', ()),  # str.isdigit() says yes, int() says no
        ('"٣"', None),  # not latin-1: no octet of an entity tag
        ('"2147483647"', (2147483647,)),
        ('"2147483648"', ()),  # past what a revision can be
        (f'"{HUGE}"', ()),
        (HUGE, ()),
        ("latest", None),
        ("²", None),
        ("", None),
        ('"3" "4"', None),
        ('"3', None),
        ('"a"b"', None),
        ("3;4", None),
    ],
)
def test_if_match_parsing(header: str, revisions: tuple[int, ...] | None) -> None:
    if revisions is None:
        with pytest.raises(core.ValidationError, match="invalid If-Match header"):
            parse_if_match(header)
    else:
        assert parse_if_match(header) == IfMatch(any=False, revisions=revisions)


def test_if_match_star_and_absent() -> None:
    assert parse_if_match(" * ") == IfMatch(any=True)
    assert parse_if_match(None) is None
    with pytest.raises(core.ValidationError):
        parse_if_match('*, "3"')


def test_expected_revision_is_the_listed_one() -> None:
    def unread() -> int:
        raise AssertionError("a single revision needs no read")

    assert expected_revision(None, unread, "tag 'x'") is None
    assert expected_revision(IfMatch(any=True), unread, "tag 'x'") is None
    assert expected_revision(IfMatch(False, (7,)), unread, "tag 'x'") == 7
    assert expected_revision(IfMatch(False, (3, 5)), lambda: 5, "tag 'x'") == 5
    assert expected_revision(IfMatch(False, (3, 5)), lambda: 4, "tag 'x'") == 3
    with pytest.raises(core.ConflictError, match="tag 'x': If-Match names no revision"):
        expected_revision(IfMatch(False, ()), unread, "tag 'x'")


def test_parse_number_takes_ascii_digits_of_bounded_length() -> None:
    assert parse_number("0042") == 42
    for text in ("", "²", "٣", "+1", "-1", " 1", "1_000", "1" * 19, HUGE):
        assert parse_number(text) is None, text


def test_if_none_match_compares_whole_tags() -> None:
    etag = '"sha256:ab"'
    for header in ('"sha256:ab"', 'W/"sha256:ab"', '"x", "sha256:ab"', "*", ' "sha256:ab" '):
        assert none_match(header, etag), header
    for header in ('"sha256:abc"', '"xsha256:ab"', "sha256:ab", '"sha256:a"', '"sha256:ab'):
        assert not none_match(header, etag), header
    assert not none_match(None, etag)


@pytest.mark.parametrize(
    ("header", "size", "answer"),
    [
        ("bytes=0-9", 100, (0, 9)),
        ("Bytes=10-", 100, (10, 99)),
        ("bytes=-5", 100, (95, 99)),
        ("bytes=-500", 100, (0, 99)),
        ("bytes=90-500", 100, (90, 99)),
        (f"bytes=0-{HUGE}", 100, (0, 99)),
        (f"bytes=-{HUGE}", 100, (0, 99)),
        ("bytes=100-", 100, 416),
        (f"bytes={HUGE}-", 100, 416),
        ("bytes=-0", 100, 416),
        ("bytes=0-", 0, 416),
        ("bytes=5-3", 100, 200),  # invalid: last before first
        ("bytes=abc", 100, 200),
        ("bytes=²-", 100, 200),
        ("bytes=1-²", 100, 200),
        ("bytes=-", 100, 200),
        ("bytes=0-1,5-6", 100, 200),
        ("items=0-5", 100, 200),
        ("bytes=+1-2", 100, 200),
    ],
)
def test_byte_ranges(header: str, size: int, answer: tuple[int, int] | int) -> None:
    requested = _byte_range(header)
    if answer == 200:
        assert requested is None
    else:
        assert requested is not None
        assert _satisfiable(*requested, size) == (None if answer == 416 else answer)


def _main(client: TestClient) -> dict:
    created = client.post("/workflows", json={"name": "sales", "dag": DAG})
    assert created.status_code == 201, created.text
    return created.json()


def _add(node: str) -> list[dict]:
    return [{"op": "add", "path": f"/nodes/{node}", "value": {"deps": []}}]


def test_if_match_over_http(client: TestClient) -> None:
    _main(client)
    for header in ('"²"', 'W/"1"', f'"{HUGE}"', '"99999999999"', '"1x"'):
        latin1 = {"If-Match": header.encode("latin-1")}
        refused = client.patch("/workflows/main", json=_add("a"), headers=latin1)
        assert refused.status_code == 409, (header, refused.text)
        assert refused.json()["error"]["current_revision"] == 1
    assert client.get("/tags/main").json()["revision"] == 1  # nothing moved
    listed = client.patch("/workflows/main", json=_add("b"), headers={"If-Match": '"7", "1"'})
    assert listed.status_code == 200 and listed.headers["ETag"] == '"2"', listed.text
    star = client.patch("/workflows/main", json=_add("c"), headers={"If-Match": "*"})
    assert star.status_code == 200 and star.json()["revision"] == 3
    bad = client.patch(
        "/workflows/main", json=_add("d"), headers={"If-Match": "²".encode("latin-1")}
    )
    assert bad.status_code == 422 and "If-Match" in bad.json()["error"]["message"]


def test_if_match_on_tags_over_http(client: TestClient) -> None:
    created = _main(client)
    target = {"target": created["artifact_id"]}
    absent = client.put("/tags/prod", json=target, headers={"If-Match": "*"})
    assert absent.status_code == 404  # `*`: only a tag that exists
    assert client.get("/tags/prod").status_code == 404
    made = client.put("/tags/prod", json=target, headers={"If-Match": '"0"'})
    assert made.status_code == 201 and made.headers["ETag"] == '"1"', made.text
    weak = client.delete("/tags/prod", headers={"If-Match": 'W/"1"'})
    assert weak.status_code == 409 and weak.json()["error"]["current_revision"] == 1
    assert client.delete("/tags/prod", headers={"If-Match": '"5", "1"'}).status_code == 204
    again = client.put("/tags/prod", json=target, headers={"If-Match": '"2"'})
    assert again.status_code == 201 and again.json()["revision"] == 3  # re-created
    same = client.put("/tags/prod", json=target, headers={"If-Match": "*"})
    assert same.status_code == 200 and same.headers["ETag"] == '"3"'


def _at_revision_3(client: TestClient) -> dict:
    """``main`` at revision 3 (and its first version, the body of a move to it)."""
    created = _main(client)
    for node in ("x", "y"):
        assert client.patch("/workflows/main", json=_add(node)).status_code == 200
    assert client.get("/tags/main").headers["ETag"] == '"3"'
    return {"target": created["artifact_id"]}


def test_if_match_compares_tags_whole_not_as_numbers(client: TestClient) -> None:
    target = _at_revision_3(client)
    for header in ('"03"', '"0003"', "03", '"03", "0004"', "05", '"0004"'):
        for answer in (
            client.put("/tags/main", json=target, headers={"If-Match": header}),
            client.patch("/workflows/main", json=_add("z"), headers={"If-Match": header}),
            client.delete("/tags/main", headers={"If-Match": header}),
        ):
            assert answer.status_code == 409, (header, answer.text)
            assert answer.json()["error"]["current_revision"] == 3
    assert client.get("/tags/main").json()["revision"] == 3  # nothing moved
    moved = client.put("/tags/main", json=target, headers={"If-Match": '"03", "3"'})
    assert moved.status_code == 200 and moved.headers["ETag"] == '"4"', moved.text


def test_repeated_if_match_lines_form_one_list(client: TestClient) -> None:
    """RFC 9110 5.3: ``If-Match: "33"`` and ``If-Match: "3"`` mean ``"33", "3"``."""
    target = _at_revision_3(client)
    moved = client.put(
        "/tags/main", json=target, headers=[("If-Match", '"33"'), ("If-Match", '"3"')]
    )
    assert moved.status_code == 200 and moved.headers["ETag"] == '"4"', moved.text
    patched = client.patch(
        "/workflows/main", json=_add("z"), headers=[("If-Match", '"9"'), ("If-Match", "4")]
    )
    assert patched.status_code == 200 and patched.headers["ETag"] == '"5"', patched.text
    lost = client.delete("/tags/main", headers=[("If-Match", '"4"'), ("If-Match", '"6"')])
    assert lost.status_code == 409 and lost.json()["error"]["current_revision"] == 5
    malformed = client.delete("/tags/main", headers=[("If-Match", '"5"'), ("If-Match", "x")])
    assert malformed.status_code == 422, malformed.text
    deleted = client.delete("/tags/main", headers=[("If-Match", 'W/"5"'), ("If-Match", '"5"')])
    assert deleted.status_code == 204, deleted.text
    assert client.get("/tags/main").status_code == 404


def test_repeated_if_none_match_lines_form_one_list(
    client: TestClient, catalog: core.Services
) -> None:
    cas_id = catalog.cas.store_content(b"bytes")
    url = f"/blobs/{cas_id}"
    lines = [("If-None-Match", '"other"'), ("If-None-Match", f'"{cas_id}"')]
    assert client.get(url, headers=lines).status_code == 304
    assert client.head(url, headers=lines).status_code == 304
    other = [("If-None-Match", '"other"'), ("If-None-Match", '"more"')]
    assert client.get(url, headers=other).status_code == 200
    assert client.head(url, headers=other).status_code == 200


def test_conditional_blob_requests_over_http(client: TestClient, catalog: core.Services) -> None:
    payload = bytes(range(100))
    cas_id = catalog.cas.store_content(payload)
    url = f"/blobs/{cas_id}"
    for header in (f'"{cas_id}0"', f'"x{cas_id}"', f'W/"{cas_id}0"', cas_id):
        whole = client.get(url, headers={"If-None-Match": header})
        assert whole.status_code == 200 and whole.content == payload, header
    assert client.get(url, headers={"If-None-Match": f'W/"{cas_id}"'}).status_code == 304
    for ignored in ("bytes=abc", "bytes=5-3", "bytes=²-", f"bytes=1-{HUGE}x"):
        whole = client.get(url, headers={"Range": ignored.encode("latin-1")})
        assert whole.status_code == 200 and whole.content == payload, ignored
    assert client.get(url, headers={"Range": f"bytes={HUGE}-"}).status_code == 416
    tail = client.get(url, headers={"Range": f"bytes=90-{HUGE}"})
    assert tail.status_code == 206 and tail.content == payload[90:]
