"""Device labels: their syntax, and a change to them as a JSON merge patch (RFC 7396). Pure.

Keys and values follow the import's rules (``control_plane.inventory``): a key is lower case
letters, digits and ``._/-``, at most 63 characters, starting and ending with a letter or
digit; a value is text of at most 63 characters.
"""

from __future__ import annotations

from collections.abc import Mapping

from .inventory import LABEL_KEY, MAX_LABEL_VALUE

MAX_LABELS = 32
"""Labels a device may carry: enough to tag it, few enough to show it in a row."""


class LabelError(ValueError):
    """A label key, value or change that is refused; the message says which and why."""


def check_key(key: object) -> str:
    if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
        msg = (
            f"{key!r} is not a label key (lower case letters, digits and ._/-, up to 63,"
            " starting and ending with a letter or digit)"
        )
        raise LabelError(msg)
    return key


def check_value(key: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_LABEL_VALUE:
        msg = f"label {key}: the value must be text of up to {MAX_LABEL_VALUE} characters"
        raise LabelError(msg)
    if any(not char.isprintable() for char in value):
        msg = f"label {key}: the value must not hold control characters"
        raise LabelError(msg)
    return value


def parse_selector(text: str) -> tuple[str, str]:
    """``key=value`` as a filter takes it."""
    key, sep, value = text.partition("=")
    if not sep:
        msg = f"{text!r} is not key=value"
        raise LabelError(msg)
    return check_key(key), check_value(key, value)


def apply_patch(current: Mapping[str, str], patch: object) -> dict[str, str]:
    """The labels after a merge patch: ``{"key": "value"}`` sets, ``{"key": null}`` removes."""
    if not isinstance(patch, Mapping):
        msg = 'the body must be a JSON object of labels: {"key": "value", "gone": null}'
        raise LabelError(msg)
    labels = dict(current)
    for key, value in patch.items():
        check_key(key)
        if value is None:
            labels.pop(key, None)
        else:
            labels[key] = check_value(key, value)
    if len(labels) > MAX_LABELS:
        msg = f"a device carries at most {MAX_LABELS} labels; this would make {len(labels)}"
        raise LabelError(msg)
    return dict(sorted(labels.items()))
