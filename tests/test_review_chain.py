"""The review pad's hash chain: canonical form, sealing, and the control plane's check (pure)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from random import Random

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.reviews.chain_check import (
    ChainProblem,
    ChainTip,
    ChainVerdict,
    ProblemKind,
    check,
)
from edge.protocol import Channel, Indicators, Rating, Review, ReviewChannel, decode, encode
from edge.protocol.review_chain import GENESIS, HASH_PATTERN, canonical, review_hash, seal

CST = timezone(timedelta(hours=8))
DOC = (Path(__file__).resolve().parent.parent / "docs" / "review-chain.md").read_text("utf-8")
RATINGS = [r for r in Rating if r is not Rating.UNKNOWN]
COMMENTS = [
    "",
    "窗口工作人员很耐心",
    "排队时间太长",
    '办事很快，"点赞"',  # noqa: RUF001 the full-width comma of Chinese text
    "材料要求\n说明不清",
    "👍",
]
SEQ_STEP = 3
"""Reviews share the device's seq with usage and events: a pad's reviews have gaps."""

HM = ProblemKind.HASH_MISMATCH
BL = ProblemKind.BROKEN_LINK


def sample_review(i: int) -> Review:
    """The i-th review of a pad: fields present and absent in a pattern that varies with i."""
    return Review(
        seq=10 + SEQ_STEP * i,
        at=None if i % 7 == 3 else datetime(2026, 3, 2, 9, 0, tzinfo=CST) + timedelta(minutes=i),
        case_number=f"4401172026030200{i:04d}",
        item_code="" if i % 5 == 4 else f"440117-SW-{i % 9:04d}",
        channel=[ReviewChannel.WINDOW_PAD, ReviewChannel.STATION][i % 4 == 1],
        rating=RATINGS[i % len(RATINGS)],
        indicators=None
        if i % 3
        else Indicators(overall=RATINGS[i % 5], attitude=None if i % 2 else RATINGS[0]),
        comment=COMMENTS[i % len(COMMENTS)],
        institution="440117000",
        window=f"A{i % 12:02d}",
        staff_id=f"cz-{i % 4:04d}",
        citizen_ref=hashlib.sha256(str(i).encode()).hexdigest() if i % 4 == 0 else "",
    )


def sealed(reviews: Sequence[Review], prev_hash: str = GENESIS) -> list[Review]:
    chain = []
    for review in reviews:
        chain.append(seal(review, prev_hash))
        prev_hash = chain[-1].hash
    return chain


CHAIN = sealed([sample_review(i) for i in range(50)])
SEQS = [review.seq for review in CHAIN]


def kinds(verdict: ChainVerdict) -> list[tuple[int, ProblemKind]]:
    return [(problem.seq, problem.kind) for problem in verdict.problems]


# The canonical form and the hash.


def test_the_hash_is_lowercase_hex_sha256_of_the_canonical_bytes() -> None:
    for review in CHAIN:
        assert review.hash == hashlib.sha256(canonical(review)).hexdigest() == review_hash(review)
        assert HASH_PATTERN.fullmatch(review.hash)


def test_canonical_leaves_out_hash_but_keeps_prev_hash() -> None:
    review = CHAIN[5]
    assert canonical(review) == canonical(msgspec.structs.replace(review, hash="f" * 64))
    assert b'"hash"' not in canonical(review)
    assert f'"prev_hash":"{CHAIN[4].hash}"'.encode() in canonical(review)
    assert seal(review, CHAIN[3].hash).hash != review.hash


def test_canonical_covers_seq_and_at() -> None:
    review = CHAIN[5]
    assert review.at is not None
    later = msgspec.structs.replace(review, at=review.at + timedelta(seconds=1))
    assert review_hash(msgspec.structs.replace(review, seq=review.seq + 1)) != review.hash
    assert review_hash(later) != review.hash


def test_canonical_is_sorted_compact_utf8() -> None:
    review = seal(
        Review(
            seq=7,
            case_number="c",
            rating=Rating.DISSATISFIED,
            comment="排队时间太长",
            indicators=Indicators(overall=Rating.BASIC, attitude=Rating.SATISFIED),
        ),
        GENESIS,
    )
    assert (
        canonical(review)
        == (
            '{"case_number":"c","comment":"排队时间太长",'
            '"indicators":{"attitude":"satisfied","overall":"basic"},'
            '"rating":"dissatisfied","seq":7,"v":1}'
        ).encode()
    )


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ('"', r"\""),
        ("\\", r"\\"),
        ("\b\t\n\f\r", r"\b\t\n\f\r"),
        ("\x00\x0b\x1f", r"\u0000\u000b\u001f"),
        ("/\x7f\u2028", "/\x7f\u2028"),
        ("窗口", "窗口"),
    ],
)
def test_strings_are_escaped_as_the_doc_says(text: str, written: str) -> None:
    # Pad firmware implements these escapes by hand from docs/review-chain.md; a change in the
    # encoder would break every pad in the field.
    review = Review(seq=1, case_number="c", rating=Rating.BASIC, comment=text)
    assert f'"comment":"{written}"'.encode() in canonical(review)


@pytest.mark.parametrize(
    ("sent", "canonical_at"),
    [
        ("2026-03-02T02:42:31Z", "2026-03-02T02:42:31Z"),
        ("2026-03-02T02:42:31+00:00", "2026-03-02T02:42:31Z"),
        ("2026-03-02T02:42:31.000-00:00", "2026-03-02T02:42:31Z"),
        ("2026-03-02T10:42:31+08:00", "2026-03-02T10:42:31+08:00"),
        ("2026-03-02t10:42:31.5+08:00", "2026-03-02T10:42:31.500000+08:00"),
        ("2026-03-02T10:42:31.000001+08:00", "2026-03-02T10:42:31.000001+08:00"),
        ("2026-03-01T21:12:31-05:30", "2026-03-01T21:12:31-05:30"),
    ],
)
def test_at_is_hashed_in_the_doc_spelling_keeping_its_offset(sent: str, canonical_at: str) -> None:
    data = f'{{"v":1,"seq":3,"case_number":"c","rating":"basic","at":"{sent}"}}'.encode()
    review = decode(Channel.REVIEW, data)
    assert isinstance(review, Review)
    assert f'"at":"{canonical_at}"'.encode() in canonical(review)


_MINIMAL = '"v":1,"seq":3,"case_number":"c","rating":"basic"'


@pytest.mark.parametrize(
    "defaults",
    [
        '"channel":"window_pad"',
        '"comment":"","item_code":"","institution":"","window":"","staff_id":"","citizen_ref":""',
        '"at":null',
        '"prev_hash":""',
        '"hash":"abc"',
        '"indicators":null',
        '"indicators":{}',
        '"indicators":{"overall":null,"efficiency":null,"service_level":null,"attitude":null}',
    ],
)
def test_a_default_sent_hashes_like_one_left_out(defaults: str) -> None:
    omitted = decode(Channel.REVIEW, f"{{{_MINIMAL}}}".encode())
    written = decode(Channel.REVIEW, f"{{{_MINIMAL},{defaults}}}".encode())
    assert isinstance(omitted, Review)
    assert isinstance(written, Review)
    assert canonical(written) == canonical(omitted)
    assert canonical(omitted) == b'{"case_number":"c","rating":"basic","seq":3,"v":1}'


def test_a_value_other_than_the_default_is_written() -> None:
    station = decode(Channel.REVIEW, f'{{{_MINIMAL},"channel":"station"}}'.encode())
    assert isinstance(station, Review)
    assert b'"channel":"station"' in canonical(station)


def test_key_order_and_escapes_of_the_sent_json_do_not_matter() -> None:
    review = CHAIN[1]
    fields = json.loads(encode(review))
    assert (
        fields["comment"] == "窗口工作人员很耐心"
    )  # non-ASCII text, so ensure_ascii below really escapes something
    reordered = json.dumps(dict(reversed(fields.items())), ensure_ascii=True).encode()
    assert reordered != encode(review)
    decoded = decode(Channel.REVIEW, reordered)
    assert isinstance(decoded, Review)
    assert canonical(decoded) == canonical(review)
    assert review_hash(decoded) == review.hash


_texts = st.text(st.characters(codec="utf-8"), max_size=20)
_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_ratings = st.sampled_from(list(Rating))
_indicators = st.none() | st.builds(
    Indicators,
    overall=st.none() | _ratings,
    efficiency=st.none() | _ratings,
    service_level=st.none() | _ratings,
    attitude=st.none() | _ratings,
)
_reviews = st.builds(
    Review,
    seq=st.integers(1, 2**63 - 1),
    at=st.none() | st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=_offsets),  # noqa: DTZ001
    case_number=_texts,
    item_code=_texts,
    channel=st.sampled_from(list(ReviewChannel)),
    rating=_ratings,
    indicators=_indicators,
    comment=_texts,
    staff_id=_texts,
    citizen_ref=_texts,
    prev_hash=st.just(GENESIS) | st.text("0123456789abcdef", min_size=64, max_size=64),
)


@given(_reviews, st.randoms(use_true_random=False))
def test_any_key_order_of_the_sent_json_hashes_alike(review: Review, rng: Random) -> None:
    fields = list(json.loads(encode(review)).items())
    rng.shuffle(fields)
    decoded = msgspec.json.decode(json.dumps(dict(fields)), type=Review)
    assert canonical(decoded) == canonical(review)


@given(_reviews)
def test_canonical_is_json_of_the_review_without_its_hash(review: Review) -> None:
    sealed_review = seal(review, review.prev_hash)
    text = canonical(sealed_review)
    # An indicators object with nothing rated is written as no indicators at all.
    indicators = None if review.indicators == Indicators() else review.indicators
    unhashed = msgspec.structs.replace(sealed_review, hash="", indicators=indicators)
    assert msgspec.json.decode(text, type=Review) == unhashed
    keys = list(json.loads(text))
    assert keys == sorted(keys)
    assert "hash" not in keys


@pytest.mark.parametrize("prev_hash", ["A" * 64, "a" * 63, "g" * 64, " " + "a" * 64])
def test_seal_refuses_a_prev_hash_that_is_not_a_hash(prev_hash: str) -> None:
    with pytest.raises(ValueError, match="prev_hash"):
        seal(CHAIN[0], prev_hash)


# The doc's worked example.


def _fenced(kind: str) -> list[str]:
    section = DOC.split("## Worked example", 1)[1]
    return re.findall(rf"^```{kind}\n(.*?)\n```$", section, flags=re.MULTILINE | re.DOTALL)


def test_the_docs_worked_example_is_what_the_code_computes() -> None:
    wire = [decode(Channel.REVIEW, text.encode()) for text in _fenced("json")]
    reviews = [review for review in wire if isinstance(review, Review)]
    texts = _fenced("text")
    canonicals, hashes = texts[0::2], texts[1::2]
    sizes = [int(n) for n in re.findall(r"canonical form, (\d+) bytes", DOC)]
    assert len(reviews) == len(wire) == len(canonicals) == len(hashes) == len(sizes) == 2
    for review, canonical_text, hash_text, size in zip(
        reviews, canonicals, hashes, sizes, strict=True
    ):
        assert canonical(review) == canonical_text.encode()
        assert len(canonical_text.encode()) == size
        assert review_hash(review) == review.hash == hash_text
    assert [review.prev_hash for review in reviews] == [GENESIS, hashes[0]]
    verdict = check(None, reviews)
    assert verdict.intact
    assert verdict.tip == ChainTip(5521, hashes[1])


def test_the_docs_shell_line_hashes_the_first_canonical_form() -> None:
    (shell,) = _fenced("sh")
    quoted = re.fullmatch(r"printf '%s' '(.*)' \| sha256sum", shell)
    assert quoted is not None
    assert quoted.group(1) == _fenced("text")[0]


# The control plane's check.


def test_a_whole_chain_is_intact() -> None:
    verdict = check(None, CHAIN)
    assert verdict.problems == ()
    assert verdict.intact
    assert verdict.tip == ChainTip(CHAIN[-1].seq, CHAIN[-1].hash)


def test_an_empty_batch_keeps_the_tip() -> None:
    tip = ChainTip(40, CHAIN[10].hash)
    assert check(tip, []) == ChainVerdict((), tip)
    assert check(None, []) == ChainVerdict((), None)


def test_checking_can_start_from_an_anchor_mid_history() -> None:
    anchor = ChainTip(CHAIN[19].seq, CHAIN[19].hash)
    assert check(anchor, CHAIN[20:]).intact


def test_a_first_review_linked_to_nothing_seen_is_a_broken_link() -> None:
    assert check(None, CHAIN[1:]).problems[0] == ChainProblem(SEQS[1], BL, "", CHAIN[0].hash)


Tampering = Callable[[list[Review]], tuple[list[Review], list[tuple[int, ProblemKind]]]]


def altered(k: int, **changes: object) -> Tampering:
    def tamper(chain: list[Review]) -> tuple[list[Review], list[tuple[int, ProblemKind]]]:
        chain[k] = msgspec.structs.replace(chain[k], **changes)
        return chain, [(SEQS[k], HM)]

    return tamper


def altered_and_resealed(k: int) -> Tampering:
    def tamper(chain: list[Review]) -> tuple[list[Review], list[tuple[int, ProblemKind]]]:
        chain[k] = seal(
            msgspec.structs.replace(chain[k], rating=Rating.SATISFIED), chain[k].prev_hash
        )
        return chain, [(SEQS[k + 1], BL)]

    return tamper


def removed(k: int) -> Tampering:
    def tamper(chain: list[Review]) -> tuple[list[Review], list[tuple[int, ProblemKind]]]:
        del chain[k]
        return chain, [(SEQS[k + 1], BL)]

    return tamper


def seqs_swapped(k: int) -> Tampering:
    def tamper(chain: list[Review]) -> tuple[list[Review], list[tuple[int, ProblemKind]]]:
        a, b = chain[k], chain[k + 1]
        chain[k : k + 2] = [
            msgspec.structs.replace(b, seq=a.seq),
            msgspec.structs.replace(a, seq=b.seq),
        ]
        # Moved first, the genesis review reads as a restart rather than a broken link.
        second = ProblemKind.RESTARTED if k == 0 else BL
        return chain, [(a.seq, HM), (a.seq, BL), (b.seq, HM), (b.seq, second), (SEQS[k + 2], BL)]

    return tamper


def inserted(k: int) -> Tampering:
    def tamper(chain: list[Review]) -> tuple[list[Review], list[tuple[int, ProblemKind]]]:
        forged = Review(seq=SEQS[k] + 1, case_number="forged", rating=Rating.VERY_SATISFIED)
        chain.insert(k + 1, seal(forged, chain[k].hash))
        return chain, [(SEQS[k + 1], BL)]

    return tamper


def restarted(k: int) -> Tampering:
    def tamper(chain: list[Review]) -> tuple[list[Review], list[tuple[int, ProblemKind]]]:
        chain[k:] = sealed(chain[k:])
        return chain, [(SEQS[k], ProblemKind.RESTARTED)]

    return tamper


def hash_stripped(k: int) -> Tampering:
    def tamper(chain: list[Review]) -> tuple[list[Review], list[tuple[int, ProblemKind]]]:
        chain[k] = msgspec.structs.replace(chain[k], hash="")
        return chain, [(SEQS[k], ProblemKind.MISSING_HASH), (SEQS[k + 1], BL)]

    return tamper


def hash_replaced(k: int) -> Tampering:
    def tamper(chain: list[Review]) -> tuple[list[Review], list[tuple[int, ProblemKind]]]:
        chain[k] = msgspec.structs.replace(chain[k], hash=CHAIN[k - 1].hash)
        return chain, [(SEQS[k], HM), (SEQS[k + 1], BL)]

    return tamper


TAMPERINGS: dict[str, Tampering] = {
    "bad review made good": altered(23, rating=Rating.VERY_SATISFIED),
    "first review's comment": altered(0, comment="很满意"),
    "last review's indicators": altered(49, indicators=Indicators(overall=Rating.SATISFIED)),
    "indicators dropped": altered(3, indicators=None),
    "time moved": altered(30, at=datetime(2026, 3, 1, tzinfo=UTC)),
    "staff changed": altered(11, staff_id="cz-9999"),
    "citizen_ref added": altered(13, citizen_ref="00" * 32),
    "altered and re-hashed": altered_and_resealed(20),
    "first removed": removed(0),
    "one removed": removed(25),
    "one before last removed": removed(48),
    "first two swapped": seqs_swapped(0),
    "two swapped": seqs_swapped(33),
    "one inserted": inserted(7),
    "restarted": restarted(18),
    "last one restarted": restarted(49),
    "hash stripped": hash_stripped(16),
    "hash replaced": hash_replaced(40),
}


@pytest.mark.parametrize("tampering", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_tampering_shows_where_it_happened(tampering: Tampering) -> None:
    chain, expected = tampering(list(CHAIN))
    assert kinds(check(None, chain)) == expected


def test_problems_say_what_was_expected_and_what_was_found() -> None:
    chain = list(CHAIN)
    chain[23] = msgspec.structs.replace(chain[23], rating=Rating.VERY_SATISFIED)
    del chain[30]
    assert check(None, chain).problems == (
        ChainProblem(SEQS[23], HM, review_hash(chain[23]), CHAIN[23].hash),
        ChainProblem(SEQS[31], BL, CHAIN[29].hash, CHAIN[30].hash),
    )


def test_a_restart_is_its_own_kind_and_the_chain_goes_on_from_it() -> None:
    chain = list(CHAIN)
    chain[10:] = sealed(chain[10:])
    assert check(None, chain).problems == (
        ChainProblem(SEQS[10], ProblemKind.RESTARTED, CHAIN[9].hash, GENESIS),
    )


def in_batches(chain: Sequence[Review], cuts: Sequence[int]) -> ChainVerdict:
    problems: list[ChainProblem] = []
    tip = None
    bounds = [0, *sorted(cuts), len(chain)]
    for start, end in itertools.pairwise(bounds):
        verdict = check(tip, chain[start:end])
        problems += verdict.problems
        tip = verdict.tip
    return ChainVerdict(tuple(problems), tip)


@given(
    st.sampled_from([None, *TAMPERINGS]),
    st.lists(st.integers(0, len(CHAIN)), max_size=12),
)
def test_any_split_into_batches_gives_the_same_verdict(
    tampering: str | None, cuts: list[int]
) -> None:
    chain = list(CHAIN) if tampering is None else TAMPERINGS[tampering](list(CHAIN))[0]
    assert in_batches(chain, cuts) == check(None, chain)


# Pads without chain support.

UNCHAINED_PAD = [sample_review(i) for i in range(20)]


def test_a_pad_without_hashes_is_reported_once() -> None:
    verdict = check(None, UNCHAINED_PAD)
    assert verdict.problems == (ChainProblem(SEQS[0], ProblemKind.UNCHAINED, "", ""),)
    assert verdict.tip == ChainTip(UNCHAINED_PAD[-1].seq, "")


@given(st.lists(st.integers(0, len(UNCHAINED_PAD)), max_size=6))
def test_a_pad_without_hashes_is_reported_once_whatever_the_batches(cuts: list[int]) -> None:
    assert kinds(in_batches(UNCHAINED_PAD, cuts)) == [(SEQS[0], ProblemKind.UNCHAINED)]


def test_a_pad_gaining_the_chain_starts_from_genesis_and_losing_it_is_a_break() -> None:
    upgraded = [*UNCHAINED_PAD[:5], *sealed(UNCHAINED_PAD[5:15]), *UNCHAINED_PAD[15:]]
    assert kinds(check(None, upgraded)) == [
        (SEQS[0], ProblemKind.UNCHAINED),
        (SEQS[15], ProblemKind.MISSING_HASH),
    ]


def test_a_chain_after_unchained_reviews_must_start_from_genesis() -> None:
    late = [*UNCHAINED_PAD[:5], *sealed(UNCHAINED_PAD[5:], prev_hash="ab" * 32)]
    assert kinds(check(None, late)) == [(SEQS[0], ProblemKind.UNCHAINED), (SEQS[5], BL)]


# What check refuses.


@pytest.mark.parametrize(
    ("tip", "reviews"),
    [
        (None, [CHAIN[1], CHAIN[0]]),
        (None, [CHAIN[1], CHAIN[1]]),
        (ChainTip(SEQS[5], CHAIN[5].hash), CHAIN[5:7]),
        (ChainTip(SEQS[5], CHAIN[5].hash), CHAIN[3:4]),
    ],
)
def test_reviews_out_of_order_or_already_checked_are_refused(
    tip: ChainTip | None, reviews: list[Review]
) -> None:
    with pytest.raises(ValueError, match="rising seq"):
        check(tip, reviews)
