"""Spotting a resident identity card number (居民身份证号码) where none may be stored. Pure.

termfleet keeps staff by their staff number (工号) and name, never by their national ID number:
the 个人信息保护法 counts it as sensitive personal information, and nothing termfleet does needs
it. Staff numbers and names are free text, though, so a well-meaning import or form could put
one there; the API refuses text that holds one.

An 18-character number (GB 11643-1999) is 17 digits and an ISO 7064 MOD 11-2 check character
(0-9 or X); the older 15-digit numbers have no check character, so any 15-digit run counts.
"""

from __future__ import annotations

import re

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARACTERS = "10X98765432"
# Runs of digits (and a final X) not glued to other digits, so "A4401171990…" is still caught.
_CANDIDATE = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9])")
_FIRST_GENERATION_LENGTH = 15


def check_character(first_17_digits: str) -> str:
    """The 18th character of a number whose first 17 digits are given."""
    total = sum(
        int(digit) * weight for digit, weight in zip(first_17_digits, _WEIGHTS, strict=True)
    )
    return _CHECK_CHARACTERS[total % 11]


def holds_national_id(text: str) -> bool:
    """Whether ``text`` contains something that reads as a resident ID card number."""
    for match in _CANDIDATE.finditer(text):
        number = match.group()
        if len(number) == _FIRST_GENERATION_LENGTH:
            return True
        if check_character(number[:17]) == number[17].upper():
            return True
    return False
