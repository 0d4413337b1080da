"""Request bodies' text rules, decoded as the API decodes them (msgspec, strict)."""

from __future__ import annotations

import msgspec
import pytest

from api.dining.schemas import RatingCreate
from api.schemas import Command


def _rating(comment: str) -> RatingCreate:
    return msgspec.json.decode(
        msgspec.json.encode({"score": 4, "comment": comment}), type=RatingCreate
    )


def test_a_comment_may_break_lines_and_use_any_script() -> None:
    assert _rating("갈비가 최고\n\tagain").comment == "갈비가 최고\n\tagain"


@pytest.mark.parametrize("comment", ["ding\u0007", "x\u202ey", "\u2066hidden\u2069", "nul\u0000"])
def test_other_control_characters_and_bidi_controls_are_refused(comment: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="comment"):
        _rating(comment)


class _Note(Command):
    text: str
    tags: list[str] = []


def test_any_command_refuses_a_nul_in_a_text_or_a_list_of_texts() -> None:
    # PostgreSQL text cannot hold U+0000: a field without a pattern of its own still refuses it.
    assert msgspec.json.decode(b'{"text": "fine", "tags": ["a"]}', type=_Note).text == "fine"
    for body in (b'{"text": "a\\u0000b"}', b'{"text": "ok", "tags": ["\\u0000"]}'):
        with pytest.raises(msgspec.ValidationError, match="NUL"):
            msgspec.json.decode(body, type=_Note)
