from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.expr import ExprError, compile_expr

ANSWERS: Mapping[str, object] = {
    "helped": "partly",
    "reasons": ["time", "staff"],
    "score": 7,
    "ratio": 0.5,
    "consent": True,
    "refused": False,
    "name": "Malmö stad",
    "when": "2024-05-01",
    "skipped": None,
    "empty": [],
    "day": dt.date(2024, 5, 1),
    "q1": "yes",
}

VALID: list[tuple[str, bool]] = [
    # literals and names
    ("true", True),
    ("false", False),
    ("null", False),
    ("consent", True),
    ("refused", False),
    ("missing", False),
    ("empty", False),
    ("'x'", True),
    # equality
    ("helped == 'partly'", True),
    ('helped == "partly"', True),
    ("'partly' == helped", True),
    ("helped != 'partly'", False),
    ("helped != 'yes'", True),
    ("score == 7", True),
    ("score == 7.0", True),
    ("score == '7'", False),
    ("consent == true", True),
    ("consent == 1", False),
    ("q1 == 'yes'", True),
    ("reasons == ['time', 'staff']", True),
    # null: only == null / != null look at it
    ("missing == null", True),
    ("skipped == null", True),
    ("null == missing", True),
    ("helped == null", False),
    ("helped != null", True),
    ("missing != null", False),
    ("missing == 'x'", False),
    ("missing != 'x'", False),
    ("missing != 5", False),
    ("missing < 5", False),
    ("missing in ['a']", False),
    ("missing not in ['a']", False),
    ("not (missing == 'x')", True),
    ("missing == other_missing", False),
    # ordering
    ("score > 5", True),
    ("score >= 7", True),
    ("score < 7", False),
    ("score <= 7", True),
    ("ratio < 1", True),
    ("-1 < ratio", True),
    ("score > -3", True),
    ("when >= '2024-01-01'", True),
    ("when < '2024-01-01'", False),
    ("score > 'a'", False),
    ("helped < 3", False),
    ("consent > false", False),
    ("reasons > 1", False),
    ("day > day", False),
    ("day >= day", True),
    # membership
    ("helped in ['partly', 'no']", True),
    ("helped in ['yes']", False),
    ("helped not in ['yes']", True),
    ("helped not in ['partly', 'no']", False),
    ("reasons in ['staff']", True),
    ("reasons in ['money']", False),
    ("reasons not in ['money']", True),
    ("reasons not in ['time']", False),
    ("'time' in reasons", True),
    ("'money' in reasons", False),
    ("'money' not in reasons", True),
    ("empty in ['a']", False),
    ("empty not in ['a']", True),
    ("score in [1, 7]", True),
    ("score in ['7']", False),
    ("score not in ['7']", True),
    ("score in [true]", False),
    ("consent in [1]", False),
    ("'Malmö' in name", True),
    ("5 in name", False),
    ("helped in []", False),
    ("helped in ['partly',]", True),
    ("score in score", False),
    # boolean logic and precedence
    ("helped == 'partly' and score > 5", True),
    ("helped == 'no' or score > 5", True),
    ("helped == 'no' or score > 50", False),
    ("not helped == 'no'", True),
    ("not not consent", True),
    ("true or false and false", True),
    ("(true or false) and false", False),
    ("not (score > 5 or refused)", False),
    ("consent and refused or score == 7", True),
    ("a == 1 or b == 2 or c == 3 or score == 7", True),
    ("consent and score and helped and name", True),
    ("(score > 5) == true", True),
    ("  score\t>\n5  ", True),
    ("x_1 == null and _private == null", True),
    ("2nd_question == null", True),
    ("'it\\'s' == \"it's\"", True),
    ("'a\\nb' != 'a b'", True),
]


@pytest.mark.parametrize(("source", "expected"), VALID)
def test_evaluate(source: str, expected: bool) -> None:
    assert compile_expr(source).evaluate(ANSWERS) is expected


def test_names_are_collected() -> None:
    expr = compile_expr("helped in ['no'] and (score > 3 or not 'a' in reasons) and x == null")
    assert expr.names == frozenset({"helped", "score", "reasons", "x"})
    assert compile_expr("'helped' == 'x'").names == frozenset()


INVALID: list[tuple[str, int, str]] = [
    ("", 0, "empty expression"),
    ("   ", 3, "empty expression"),
    ("a ==", 4, "expected a value"),
    ("a = 1", 2, "use '=='"),
    ("a == 1 && b", 7, "use 'and'"),
    ("a || b", 2, "use 'or'"),
    ("!a", 0, "use 'not'"),
    ("(a == 1", 7, "expected ')'"),
    ("a == 1)", 6, "unmatched ')'"),
    ("a == 1 == 2", 7, "cannot be chained"),
    ("a < b < c", 6, "cannot be chained"),
    ("'abc", 0, "unterminated string"),
    ("a == 'x\\q'", 7, "unknown escape"),
    ("a b", 2, "expected an operator"),
    ("a == 1 b", 7, "expected an operator"),
    ("x in [1,", 8, "expected a quoted text"),
    ("x in [1 2]", 8, "expected ',' or ']'"),
    ("x in [a]", 6, "expected a quoted text"),
    ("x in ['a'", 9, "expected ',' or ']'"),
    ("a == True", 5, "write 'true'"),
    ("a == None", 5, "write 'null'"),
    ("a and", 5, "expected a value"),
    ("and a", 0, "expected a value"),
    ("a == not b", 5, "expected a value"),
    ("a.b == 1", 1, "unexpected character '.'"),
    ("a == 1 -", 7, "unexpected character '-'"),
    ("é == 1", 0, "unexpected character"),
    ("(" * 100 + "a" + ")" * 100, 64, "nested too deeply"),
    ("not " * 100 + "a", 256, "nested too deeply"),
]


@pytest.mark.parametrize(("source", "position", "message"), INVALID)
def test_invalid(source: str, position: int, message: str) -> None:
    with pytest.raises(ExprError) as info:
        compile_expr(source)
    assert info.value.position == position
    assert message in info.value.message
    assert f"at column {position + 1}" in str(info.value)


def test_error_text_names_the_token() -> None:
    with pytest.raises(ExprError) as info:
        compile_expr("helped in ['a'] ant score > 3")
    assert str(info.value) == (
        "expected an operator ('and', 'or', '==', 'in', ...) at column 17: near 'ant'"
    )
    assert info.value.column == 17


def test_too_long() -> None:
    with pytest.raises(ExprError, match="longer than"):
        compile_expr("a == 1 or " * 2000 + "a == 1")


class _Hostile:
    """An env value whose comparisons blow up: evaluate must still answer."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("boom")

    def __lt__(self, other: object) -> bool:
        raise RuntimeError("boom")

    def __bool__(self) -> bool:
        raise RuntimeError("boom")

    __hash__ = object.__hash__


@pytest.mark.parametrize(
    "source", ["h", "h == h", "h < h", "h in [1]", "'a' in h", "not h", "h != 'x'"]
)
def test_evaluate_never_raises(source: str) -> None:
    assert compile_expr(source).evaluate({"h": _Hostile()}) in (True, False)


_ATOMS = st.sampled_from(
    ["a", "b", "q_1", "'x'", '"y"', "1", "-2", "3.5", "true", "false", "null", "['x', 1]", "[]"]
)
_OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in", "and", "or"])
_SOUP = st.lists(
    st.one_of(_ATOMS, _OPS, st.sampled_from(["(", ")", "not", "[", "]", ","]), st.text(max_size=3)),
    max_size=12,
).map(" ".join)
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.lists(st.one_of(st.text(max_size=2), st.integers()), max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(
    source=st.one_of(st.text(max_size=40), _SOUP),
    env=st.dictionaries(st.sampled_from(["a", "b", "q_1"]), _VALUES),
)
def test_arbitrary_text_only_raises_expr_error(source: str, env: dict[str, object]) -> None:
    try:
        expr = compile_expr(source)
    except ExprError as err:
        assert 0 <= err.position <= len(source)
        return
    assert expr.evaluate(env) in (True, False)
