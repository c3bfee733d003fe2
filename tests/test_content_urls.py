"""Signed download URLs and byte ranges: pure tables and properties (content_urls).

A URL signed for a package, a device and an expiry is accepted until then and for nothing
else; Range and If-Range follow RFC 9110 for the one-range requests a resuming terminal sends.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane import content_urls
from control_plane.content_urls import (
    ByteRange,
    UnsatisfiableRangeError,
    UrlArgumentError,
    UrlRefusal,
    byte_range,
    check,
    sign_url,
)
from provisioning.credentials import broker_password

KEY = content_urls.url_key(bytes(range(32)))
SHA = hashlib.sha256(b"a package").hexdigest()
OTHER_SHA = hashlib.sha256(b"another package").hexdigest()
DEVICE = "kiosk-440117000-01"
EXPIRES = 1_800_000_000
ETAG = f'"{SHA}"'

device_ids = st.from_regex(content_urls.DEVICE_ID, fullmatch=True)
shas = st.binary(min_size=1, max_size=8).map(lambda data: hashlib.sha256(data).hexdigest())


def parts(url: str) -> tuple[str, str, str, str]:
    """The sha256, device, expires and sig a URL carries, as the server reads them."""
    split = urlsplit(url)
    before, prefix, name = split.path.partition(content_urls.DOWNLOAD_PREFIX)
    assert prefix
    assert before in {"", "/base"}  # a base URL's path is kept, for a reverse proxy
    sha256 = name.removesuffix(".tfpkg")
    query = {name: values[0] for name, values in parse_qs(split.query).items()}
    assert set(query) == {"device", "expires", "sig"}
    return sha256, query["device"], query["expires"], query["sig"]


# --- URLs ---------------------------------------------------------------------------------------


def test_a_signed_url_has_the_documented_shape_and_signature() -> None:
    url = sign_url("https://cp.example/base/", SHA, DEVICE, EXPIRES, KEY)

    assert url.startswith(f"https://cp.example/base/content/v1/packages/{SHA}.tfpkg?")
    sha256, device, expires, sig = parts(url)
    expected = hmac.new(KEY, f"{SHA}\n{DEVICE}\n{EXPIRES}".encode(), hashlib.sha256).hexdigest()
    assert (sha256, device, expires, sig) == (SHA, DEVICE, str(EXPIRES), expected[:32])


def test_the_url_key_is_derived_from_the_secret_for_urls_alone() -> None:
    secret = bytes(range(32))
    expected = hmac.new(secret, b"termfleet content url v1", hashlib.sha256).digest()

    assert content_urls.url_key(secret) == expected
    assert content_urls.url_key(bytes(range(1, 33))) != expected
    assert broker_password(secret, "termfleet content url v1").encode() != expected


@given(sha256=shas, device=device_ids, expires=st.integers(1, 10**12 - 1))
def test_a_url_is_accepted_until_it_expires(sha256: str, device: str, expires: int) -> None:
    url = sign_url("http://cp:8080", sha256, device, expires, KEY)

    assert check(*parts(url), KEY, now=expires - 1) is None
    assert check(*parts(url), KEY, now=expires) is UrlRefusal.EXPIRED
    assert check(*parts(url), KEY, now=expires + 10**6) is UrlRefusal.EXPIRED


@given(device=device_ids, other=device_ids)
def test_a_url_signed_for_one_device_is_refused_to_another(device: str, other: str) -> None:
    sha256, _, expires, sig = parts(sign_url("http://cp", SHA, device, EXPIRES, KEY))

    verdict = check(sha256, other, expires, sig, KEY, now=0)

    assert verdict is (None if other == device else UrlRefusal.BAD_SIGNATURE)


@given(position=st.integers(0, 31), replacement=st.sampled_from("0123456789abcdef"))
def test_any_changed_signature_character_is_a_bad_signature(
    position: int, replacement: str
) -> None:
    sha256, device, expires, sig = parts(sign_url("http://cp", SHA, DEVICE, EXPIRES, KEY))
    forged = sig[:position] + replacement + sig[position + 1 :]

    verdict = check(sha256, device, expires, forged, KEY, now=0)

    assert verdict is (None if forged == sig else UrlRefusal.BAD_SIGNATURE)


def test_another_package_key_or_later_expiry_is_a_bad_signature() -> None:
    _, device, expires, sig = parts(sign_url("http://cp", SHA, DEVICE, EXPIRES, KEY))
    other_key = content_urls.url_key(bytes(32))

    assert check(OTHER_SHA, device, expires, sig, KEY, now=0) is UrlRefusal.BAD_SIGNATURE
    assert check(SHA, device, str(EXPIRES + 1), sig, KEY, now=0) is UrlRefusal.BAD_SIGNATURE
    assert check(SHA, device, expires, sig, other_key, now=0) is UrlRefusal.BAD_SIGNATURE
    # The signature is checked first: a forged URL never learns that it would have expired.
    assert check(SHA, device, "1", sig, KEY, now=10**9) is UrlRefusal.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("sha256", "device", "expires", "sig"),
    [
        (SHA.upper(), DEVICE, "1", "0" * 32),
        (SHA[:63], DEVICE, "1", "0" * 32),
        (SHA, "", "1", "0" * 32),
        (SHA, "kiosk\n1", "1", "0" * 32),
        (SHA, "../kiosk", "1", "0" * 32),
        (SHA, DEVICE, "", "0" * 32),
        (SHA, DEVICE, "-1", "0" * 32),
        (SHA, DEVICE, "+1", "0" * 32),
        (SHA, DEVICE, "1.5", "0" * 32),
        (SHA, DEVICE, "\u0661\u0662", "0" * 32),  # Arabic-Indic digits: isdigit(), no time
        (SHA, DEVICE, "1" * 13, "0" * 32),
        (SHA, DEVICE, "1", "0" * 31),
        (SHA, DEVICE, "1", "0" * 64),
        (SHA, DEVICE, "1", "A" * 32),
        (SHA, DEVICE, "1", ""),
    ],
)
def test_a_url_part_of_the_wrong_shape_is_malformed(
    sha256: str, device: str, expires: str, sig: str
) -> None:
    assert check(sha256, device, expires, sig, KEY, now=0) is UrlRefusal.MALFORMED


@pytest.mark.parametrize(
    ("sha256", "device", "expires"),
    [(SHA.upper(), DEVICE, 1), (SHA, "a b", 1), (SHA, DEVICE, -1), (SHA, DEVICE, 10**12)],
)
def test_no_url_is_signed_for_what_check_would_refuse(
    sha256: str, device: str, expires: int
) -> None:
    with pytest.raises(UrlArgumentError):
        sign_url("http://cp", sha256, device, expires, KEY)


# --- byte ranges --------------------------------------------------------------------------------

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "if_range", "expected"),
    [
        (None, None, None),
        ("bytes=0-99", None, ByteRange(0, 100, SIZE)),  # the first bytes
        ("bytes=500-599", None, ByteRange(500, 600, SIZE)),  # the middle
        ("bytes=-100", None, ByteRange(900, SIZE, SIZE)),  # a suffix
        ("bytes=900-", None, ByteRange(900, SIZE, SIZE)),  # open-ended: a resume
        ("bytes=0-", None, ByteRange(0, SIZE, SIZE)),
        ("bytes=990-5000", None, ByteRange(990, SIZE, SIZE)),  # past the end: to the end
        ("bytes=-5000", None, ByteRange(0, SIZE, SIZE)),  # a suffix longer than the file
        ("bytes=999-999", None, ByteRange(999, SIZE, SIZE)),
        ("BYTES=1-2", None, ByteRange(1, 3, SIZE)),
        ("bytes=0-0", None, ByteRange(0, 1, SIZE)),
        ("bytes=0-" + "9" * 40, None, ByteRange(0, SIZE, SIZE)),
        ("bytes=900-", ETAG, ByteRange(900, SIZE, SIZE)),  # If-Range: this file still
        ("bytes=900-", f'"{OTHER_SHA}"', None),  # If-Range: another file, send it whole
        ("bytes=900-", f'W/"{SHA}"', None),  # a weak tag never matches (RFC 9110 13.1.5)
        ("bytes=900-", "Tue, 03 Mar 2026 08:00:00 GMT", None),  # a date: no Last-Modified
        ("bytes=5-3", None, None),  # invalid: ignored
        ("bytes=0-1,5-6", None, None),  # several ranges: served whole
        ("items=0-1", None, None),
        ("bytes=-", None, None),
        ("bytes=a-b", None, None),
        ("bytes=\u0661-\u0662", None, None),  # Arabic-Indic digits
        ("bytes 0-1", None, None),
    ],
)
def test_range_and_if_range(header: str | None, if_range: str | None, expected: object) -> None:
    assert byte_range(header, if_range, ETAG, SIZE) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=1000-", SIZE),
        ("bytes=1000-2000", SIZE),
        ("bytes=" + "9" * 40 + "-", SIZE),
        ("bytes=-0", SIZE),
        ("bytes=0-", 0),
        ("bytes=-5", 0),
    ],
)
def test_a_range_past_the_end_or_empty_is_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(UnsatisfiableRangeError):
        byte_range(header, None, ETAG, size)


def test_a_range_names_its_content_range() -> None:
    part = ByteRange(900, SIZE, SIZE)

    assert (part.length, part.content_range()) == (100, "bytes 900-999/1000")


@given(
    header=st.one_of(
        st.text(max_size=40),
        st.builds(
            "bytes={}-{}".format,
            st.one_of(st.just(""), st.integers(0, 3000).map(str)),
            st.one_of(st.just(""), st.integers(0, 3000).map(str)),
        ),
    ),
    size=st.integers(0, 2000),
)
def test_any_range_header_is_whole_a_part_within_the_file_or_unsatisfiable(
    header: str, size: int
) -> None:
    try:
        part = byte_range(header, None, ETAG, size)
    except UnsatisfiableRangeError:
        return
    assert part is None or 0 <= part.start < part.stop <= size


@given(first=st.integers(0, 3000), last=st.integers(0, 3000), size=st.integers(1, 2000))
def test_a_closed_range_selects_the_bytes_a_slice_does(first: int, last: int, size: int) -> None:
    data = bytes(index % 251 for index in range(size))
    try:
        part = byte_range(f"bytes={first}-{last}", ETAG, ETAG, size)
    except UnsatisfiableRangeError:
        assert first >= size
        return
    if last < first:
        assert part is None
        return
    assert part is not None
    assert data[part.start : part.stop] == data[first : last + 1]
