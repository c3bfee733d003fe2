"""Claim codes and enrollment links: encoding, the check symbol, normalisation, links, refusals."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.protocol import claim_code
from edge.protocol.claim_code import (
    CHECK_ALPHABET,
    DATA_ALPHABET,
    ClaimCodeError,
    ClaimInput,
    code_hash,
    code_prefix,
    enroll_link,
    format_code,
    new_code,
    normalize,
    parse_claim,
)

SERVER = "mqtts://broker.example:8883"
PASSWORD = "claim-pass"
# 1234 is 16J in Crockford base32, and 1234 mod 37 = 13, which is the check symbol D.
CODE_1234 = "0000-0000-0000-016J-D"
CANONICAL_1234 = "000000000000016JD"


def fixed(value: int) -> str:
    return new_code(lambda _bits: value)


def sample_codes() -> list[str]:
    rng = random.Random(5)
    return [fixed(0), fixed((1 << 80) - 1), CODE_1234] + [
        fixed(rng.getrandbits(80)) for _ in range(4)
    ]


# --- encoding -------------------------------------------------------------------------------


def test_a_code_is_sixteen_crockford_symbols_and_the_mod_37_check_symbol() -> None:
    assert fixed(1234) == CODE_1234
    assert fixed(0) == "0000-0000-0000-0000-0"
    assert fixed((1 << 80) - 1) == "ZZZZ-ZZZZ-ZZZZ-ZZZZ-" + CHECK_ALPHABET[((1 << 80) - 1) % 37]
    assert CHECK_ALPHABET[33] == "~"
    assert fixed(33) == "0000-0000-0000-0011-~"


def test_the_random_source_must_give_eighty_bits() -> None:
    with pytest.raises(ValueError, match="outside 80 bits"):
        new_code(lambda _bits: 1 << 80)
    with pytest.raises(ValueError, match="outside 80 bits"):
        new_code(lambda _bits: -1)


def test_codes_round_trip_through_normalize_and_format() -> None:
    for code in [*sample_codes(), *(new_code() for _ in range(50))]:
        canonical = normalize(code)
        assert len(canonical) == 17
        assert "-" not in canonical
        assert normalize(canonical) == canonical
        assert format_code(canonical) == code
        assert format_code(code) == code


def test_new_code_has_eighty_bits_of_entropy_in_practice() -> None:
    codes = [normalize(new_code()) for _ in range(10_000)]

    assert len(set(codes)) == len(codes)
    for position in range(16):
        assert {code[position] for code in codes} == set(DATA_ALPHABET), position
    assert {code[16] for code in codes} == set(CHECK_ALPHABET)


# --- the check symbol catches every typo ----------------------------------------------------


def substitutions(canonical: str) -> Iterator[tuple[str, str]]:
    """Every code that differs in one symbol, and the alphabet the new symbol is from."""
    for position, symbol in enumerate(canonical):
        alphabet = CHECK_ALPHABET if position == 16 else DATA_ALPHABET
        for other in alphabet:
            if other != symbol:
                yield canonical[:position] + other + canonical[position + 1 :], alphabet


@pytest.mark.parametrize("code", sample_codes())
def test_every_single_changed_symbol_is_caught(code: str) -> None:
    typos = list(substitutions(normalize(code)))
    assert len(typos) == 16 * 31 + 36
    for typo, _alphabet in typos:
        with pytest.raises(ClaimCodeError, match="typo"):
            normalize(typo)


@pytest.mark.parametrize("code", sample_codes())
def test_a_check_only_symbol_typed_inside_the_code_is_caught(code: str) -> None:
    canonical = normalize(code)
    for position in range(16):
        for extra in "*~$=U":
            typo = canonical[:position] + extra + canonical[position + 1 :]
            with pytest.raises(ClaimCodeError, match="only the last symbol"):
                normalize(typo)


@pytest.mark.parametrize("code", [*sample_codes(), fixed(0x123456789ABCDEF0123)])
def test_every_swap_of_neighbouring_symbols_is_caught(code: str) -> None:
    canonical = normalize(code)
    swaps = 0
    for left in range(16):
        a, b = canonical[left], canonical[left + 1]
        if a == b:
            continue  # a swap of equal symbols is no typo
        swaps += 1
        with pytest.raises(ClaimCodeError, match=r"typo|only the last symbol"):
            normalize(canonical[:left] + b + a + canonical[left + 2 :])
    if len(set(canonical)) > 2:
        assert swaps > 0


# --- normalisation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "0000-0000-0000-016J-D",
        "0000-0000-0000-016j-d",
        "000000000000016JD",
        "  0000 0000 0000 016J D  ",
        "0000\t0000\n0000-016J-D",
        "oooo-OOOO-0o0O-0i6j-d",
        "0000-0000-0000-0L6J-D",
        "0000-0000-0000-0l6J-D",
        "".join(chr(ord(c) + 0xFEE0) for c in "000000000000016JD"),  # full-width (Chinese IME)
        "0000\u20130000\u20140000\u2212016J-D",  # dashes a document or chat put in
    ],
)
def test_normalize_forgives_case_spacing_dashes_and_lookalikes(typed: str) -> None:
    assert normalize(typed) == CANONICAL_1234
    assert parse_claim(typed) == ClaimInput(code=CANONICAL_1234)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "16 symbols plus a check symbol, got 0"),
        ("0000-0000-0000-D", "16 symbols plus a check symbol, got 13"),
        ("ABCD-EFGH-JKMN", "16 symbols plus a check symbol, got 12"),
        ("0000-0000-0000-016J-DD", "16 symbols plus a check symbol, got 18"),
        ("0000-0000-0000-016J-#", "contains '#'"),
        ("0000_0000_0000_016J_D", "contains '_'"),
        ("0000-0000-0000-016J-E", "typo"),
        ("U000-0000-0000-016J-D", "'U' before the end"),
        ("0" * 5000, "far too long"),
    ],
)
def test_normalize_says_what_is_wrong(typed: str, message: str) -> None:
    with pytest.raises(ClaimCodeError, match=message):
        normalize(typed)
    with pytest.raises(ClaimCodeError, match=message):
        parse_claim(typed)


def test_the_typo_message_tells_the_technician_what_to_do() -> None:
    with pytest.raises(ClaimCodeError) as caught:
        normalize("0000-0000-0000-016J-E")
    assert str(caught.value) == (
        "claim code has a typo (check symbol does not match); re-type it or scan the QR code"
    )


# --- what the database and listings see -----------------------------------------------------


def test_the_hash_is_the_sha256_of_the_canonical_code_whatever_was_typed() -> None:
    expected = "b898aee98c0670cdbb5d3bddd44de54a477f189bf9f10d341636f5723b56ee8c"
    assert hashlib.sha256(CANONICAL_1234.encode()).hexdigest() == expected
    assert code_hash(CODE_1234) == expected
    assert code_hash("oooo oooo oooo o16j d") == expected
    assert code_hash(CANONICAL_1234) == expected


def test_hashes_differ_per_code() -> None:
    codes = [new_code() for _ in range(200)]
    assert len({code_hash(code) for code in codes}) == len(codes)


def test_the_prefix_is_the_first_four_symbols_of_the_canonical_code() -> None:
    abcd = fixed((((10 * 32 + 11) * 32 + 12) * 32 + 13) << 60)
    assert abcd.startswith("ABCD-0000-")
    assert code_prefix(abcd.lower()) == "ABCD"
    assert code_prefix(CODE_1234) == "0000"
    with pytest.raises(ClaimCodeError, match="typo"):
        code_prefix("0000-0000-0000-016J-E")
    with pytest.raises(ClaimCodeError, match="typo"):
        code_hash("0000-0000-0000-016J-E")


# --- enrollment links -----------------------------------------------------------------------


def test_a_link_carries_the_canonical_code_the_server_and_the_password() -> None:
    link = enroll_link(CODE_1234, SERVER, PASSWORD)

    assert link == (
        "termfleet://enroll?code=000000000000016JD"
        "&server=mqtts%3A%2F%2Fbroker.example%3A8883&secret=claim-pass"
    )
    assert parse_claim(link) == ClaimInput(CANONICAL_1234, SERVER, PASSWORD)


@pytest.mark.parametrize(
    "password",
    ["a&b=c", "p@ss word+%20#frag?x=1", "认领密码", "ümlaut€&=中", "==&&", " leading space"],
)
@pytest.mark.parametrize("server", ["mqtt://broker", SERVER, "mqtts://[::1]:8883", "MQTT://h/"])
def test_links_round_trip(password: str, server: str) -> None:
    code = new_code()
    link = enroll_link(code, server, password)

    assert link.isascii()
    assert parse_claim(link) == ClaimInput(normalize(code), server, password)
    assert parse_claim(f"  {link}\n") == ClaimInput(normalize(code), server, password)


@settings(deadline=None)
@given(password=st.text(min_size=1), value=st.integers(0, (1 << 80) - 1))
def test_any_password_round_trips(password: str, value: int) -> None:
    link = enroll_link(fixed(value), SERVER, password)
    assert parse_claim(link) == ClaimInput(normalize(fixed(value)), SERVER, password)


def test_links_tolerate_a_slash_a_capital_scheme_and_fields_from_newer_releases() -> None:
    link = f"TERMFLEET://enroll/?code={CODE_1234}&site=44011&server=mqtt%3A%2F%2Fb&secret=x"
    assert parse_claim(link) == ClaimInput(CANONICAL_1234, "mqtt://b", "x")


def test_a_link_without_server_or_secret_leaves_them_to_the_command_line() -> None:
    assert parse_claim(f"termfleet://enroll?code={CANONICAL_1234}") == ClaimInput(CANONICAL_1234)
    assert parse_claim(f"termfleet://enroll?code={CODE_1234}&server=&secret=") == ClaimInput(
        CANONICAL_1234
    )


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ("https://example.org/enroll?code=X", "scheme 'https'"),
        ("mqtts://broker:8883", "scheme 'mqtts'"),
        ("termfleet://provision?code=" + CANONICAL_1234, "expected termfleet://enroll"),
        ("termfleet://enroll/more?code=" + CANONICAL_1234, "expected termfleet://enroll"),
        ("termfleet://enroll?server=mqtt%3A%2F%2Fb", "link has no code="),
        ("termfleet://enroll?code=", "link has no code="),
        ("termfleet://enroll", "link has no code="),
        (f"termfleet://enroll?code={CANONICAL_1234}&code={CANONICAL_1234}", "code= more than"),
        ("termfleet://enroll?code=000000000000016JE", "typo"),
        ("termfleet://enroll?code=000000000016JD", "got 14"),
        (f"termfleet://enroll?code={CANONICAL_1234}&server=http%3A%2F%2Fb", "mqtt:// or mqtts://"),
        (f"termfleet://enroll?code={CANONICAL_1234}&server=broker", "mqtt:// or mqtts://"),
        (f"termfleet://enroll?code={CANONICAL_1234}&secret=%FF", "not a readable"),
        ("termfleet://[enroll?code=X", "not a readable"),
        ("termfleet://enroll?" + "&".join(f"f{i}=1" for i in range(40)), "not a readable"),
        ("termfleet://enroll?code=" + "0" * 5000, "far too long"),
    ],
)
def test_parse_claim_refuses_links_it_cannot_use(link: str, message: str) -> None:
    with pytest.raises(ClaimCodeError, match=message):
        parse_claim(link)


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("http://broker", "mqtt:// or mqtts://"),
        ("broker:1883", "mqtt:// or mqtts://"),
        ("", "mqtt:// or mqtts://"),
        ("mqtt://", "no valid host"),
        ("mqtt://:1883", "no valid host"),
        ("mqtt://bro ker", "no valid host"),
        ("mqtts://broker:99999", "not a valid URL"),
        ("mqtts://broker:port", "not a valid URL"),
        ("mqtts://[::1", "not a valid URL"),
        ("mqtts://broker:0", "port 0"),
        ("mqtts://user:pw@broker", "just mqtt"),
        ("mqtts://broker/path", "just mqtt"),
        ("mqtts://broker?x=1", "just mqtt"),
        ("mqtts://broker#x", "just mqtt"),
    ],
)
def test_enroll_link_refuses_servers_that_are_not_a_broker(server: str, message: str) -> None:
    with pytest.raises(ClaimCodeError, match=message):
        enroll_link(CODE_1234, server, PASSWORD)


def test_enroll_link_refuses_a_bad_code_and_an_empty_password() -> None:
    with pytest.raises(ClaimCodeError, match="typo"):
        enroll_link("0000-0000-0000-016J-E", SERVER, PASSWORD)
    with pytest.raises(ClaimCodeError, match="claim password is empty"):
        enroll_link(CODE_1234, SERVER, "")


def test_a_claim_input_is_frozen() -> None:
    claim = parse_claim(CODE_1234)
    with pytest.raises(dataclasses.FrozenInstanceError):
        claim.code = "other"  # type: ignore[misc]


# --- any text: a ClaimInput or a ClaimCodeError, nothing else -------------------------------


def parse_or_refuse(text: str) -> None:
    try:
        claim = parse_claim(text)
    except ClaimCodeError:
        return
    assert len(claim.code) == 17
    assert normalize(claim.code) == claim.code


FIELD = st.sampled_from(["code", "server", "secret", "x", "", "code%00", "%FF"])
VALUE = st.one_of(
    st.text(max_size=30),
    st.just(CANONICAL_1234),
    st.sampled_from(["mqtt%3A%2F%2Fb", "mqtt://[::1", "%E5%AF", "%", "mqtts://h:70000"]),
)
QUERY = st.lists(st.tuples(FIELD, VALUE), max_size=5).map(
    lambda pairs: "&".join(f"{name}={value}" for name, value in pairs)
)


@settings(deadline=None, max_examples=500)
@given(st.text())
def test_any_text_gives_a_claim_or_a_claim_code_error(text: str) -> None:
    parse_or_refuse(text)


@settings(deadline=None, max_examples=500)
@given(
    head=st.sampled_from(["termfleet://enroll?", "termfleet://", "termfleet:", "TermFleet://x/?"]),
    query=st.one_of(QUERY, st.text()),
)
def test_any_link_shaped_text_gives_a_claim_or_a_claim_code_error(head: str, query: str) -> None:
    parse_or_refuse(head + query)


@settings(deadline=None, max_examples=300)
@given(st.text(alphabet=DATA_ALPHABET + "*~$=Uoil- -\u3000", max_size=30))
def test_any_code_shaped_text_gives_a_claim_or_a_claim_code_error(text: str) -> None:
    parse_or_refuse(text)


# --- the module stays part of the wire contract ---------------------------------------------


def test_the_module_imports_only_the_standard_library() -> None:
    assert claim_code.__file__ is not None
    tree = ast.parse(Path(claim_code.__file__).read_text(encoding="utf-8"))
    roots = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert roots
    assert roots <= set(sys.stdlib_module_names) | {"__future__"}
