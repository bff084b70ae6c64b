"""A small, safe expression language for `show_if` (over answers) and audiences (over attributes).

Why one module: the tokenizer, parser and evaluator of one small language share its token and node
types, and the grammar and semantics below hold only of the three together.

Grammar (lowest precedence first)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") operand]
    operand    := STRING | NUMBER | "true" | "false" | "null" | NAME | list | "(" expr ")"
    list       := "[" [literal ("," literal)* [","]] "]"

Semantics: a missing name is null; any comparison with null is false (also `!=` and
`not in`, as in SQL) except `== null` and `!= null`; a bare name is true when its value is
truthy; `x in [..]` with a list `x` (a select_many answer) is true when any element is in the
list; ordering between incompatible types is false. `evaluate` never raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Expr", "ExprError", "Node", "compile_expr"]

MAX_SOURCE_LENGTH: Final = 10_000
MAX_DEPTH: Final = 64

Value = str | int | float | bool | None | tuple[object, ...]
Env = Mapping[str, object]
Evaluator = Callable[[Env], object]


class ExprError(ValueError):
    """An expression that does not parse; `position` is the 0-based offset of the bad token."""

    def __init__(self, message: str, position: int, near: str = "") -> None:
        self.message = message
        self.position = position
        self.near = near
        where = f"near '{near}'" if near else "at the end of the expression"
        super().__init__(f"{message} at column {position + 1}: {where}")

    @property
    def column(self) -> int:
        """1-based column, as shown to survey authors."""
        return self.position + 1


# --- tokens -----------------------------------------------------------------------------------

_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "true", "false", "null"})
_OPERATORS: Final = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",")
_WORD = re.compile(r"[A-Za-z0-9_]+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?![A-Za-z0-9_])")
_ESCAPES: Final = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_HINTS: Final = {
    "=": "use '==' to compare",
    "!": "use 'not' or '!='",
    "&": "use 'and'",
    "|": "use 'or'",
}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    """"op", "kw", "name", "str", "num" or "end"."""
    text: str
    value: Value
    pos: int


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c.isspace():
            i += 1
            continue
        if c in "'\"":
            value, end = _read_string(source, i)
            tokens.append(_Token("str", source[i:end], value, i))
            i = end
            continue
        if c.isdigit() or (c == "-" and i + 1 < n and source[i + 1].isdigit()):
            number = _NUMBER.match(source, i)
            if number:
                text = number.group()
                num: int | float = float(text) if "." in text else int(text)
                tokens.append(_Token("num", text, num, i))
                i = number.end()
                continue
        word = _WORD.match(source, i)
        if word:
            text = word.group()
            if text in _KEYWORDS:
                tokens.append(_Token("kw", text, None, i))
            else:
                tokens.append(_Token("name", text, None, i))
            i = word.end()
            continue
        op = next((o for o in _OPERATORS if source.startswith(o, i)), None)
        if op is not None:
            tokens.append(_Token("op", op, None, i))
            i += len(op)
            continue
        if source.startswith("&&", i) or source.startswith("||", i):
            raise ExprError(_HINTS[c], i, source[i : i + 2])
        hint = _HINTS.get(c)
        raise ExprError(hint or f"unexpected character {c!r}", i, c)
    tokens.append(_Token("end", "", None, n))
    return tokens


def _read_string(source: str, start: int) -> tuple[str, int]:
    quote = source[start]
    out: list[str] = []
    i = start + 1
    while i < len(source):
        c = source[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\":
            nxt = source[i + 1 : i + 2]
            if nxt not in _ESCAPES:
                raise ExprError("unknown escape in string", i, source[i : i + 2])
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(c)
        i += 1
    raise ExprError("unterminated string", start, source[start : start + 10])


# --- syntax tree ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: Value


@dataclass(frozen=True, slots=True)
class Name:
    name: str


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str
    """"and" or "or"."""
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    """One of ==, !=, <, <=, >, >=, in, not in."""
    left: Node
    right: Node


Node = Literal | Name | Not | BoolOp | Compare
"""A parsed expression; lists are `Literal`s holding a tuple."""

_COMPARE_OPS: Final = frozenset({"==", "!=", "<", "<=", ">", ">="})


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.i = 0
        self.depth = 0
        self.names: set[str] = set()

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def fail(self, message: str, tok: _Token | None = None) -> ExprError:
        t = tok or self.tok
        return ExprError(message, t.pos, t.text)

    def advance(self) -> _Token:
        t = self.tokens[self.i]
        if t.kind != "end":
            self.i += 1
        return t

    def at(self, kind: str, text: str) -> bool:
        return self.tok.kind == kind and self.tok.text == text

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.fail("empty expression")
        node = self.expr()
        if self.tok.kind != "end":
            if self.tok.kind in ("name", "str", "num") or self.at("op", "("):
                raise self.fail("expected an operator ('and', 'or', '==', 'in', ...)")
            if self.at("op", ")"):
                raise self.fail("unmatched ')'")
            raise self.fail(f"unexpected '{self.tok.text}'")
        return node

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail("expression is nested too deeply")

    def expr(self) -> Node:
        return self.bool_op("or", self.and_expr)

    def and_expr(self) -> Node:
        return self.bool_op("and", self.not_expr)

    def bool_op(self, op: str, operand: Callable[[], Node]) -> Node:
        operands = [operand()]
        while self.at("kw", op):
            self.advance()
            operands.append(operand())
        return operands[0] if len(operands) == 1 else BoolOp(op, tuple(operands))

    def not_expr(self) -> Node:
        if self.at("kw", "not"):
            self.nest()
            self.advance()
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        op = self.compare_op()
        if op is None:
            return left
        right = self.operand()
        if self.compare_op(peek=True) is not None:
            raise self.fail("comparisons cannot be chained; join them with 'and'")
        return Compare(op, left, right)

    def compare_op(self, peek: bool = False) -> str | None:
        t = self.tok
        if t.kind == "op" and t.text in _COMPARE_OPS:
            op = t.text
        elif t.kind == "kw" and t.text == "in":
            op = "in"
        elif t.kind == "kw" and t.text == "not" and self.tokens[self.i + 1].text == "in":
            op = "not in"
        else:
            return None
        if not peek:
            self.advance()
            if op == "not in":
                self.advance()
        return op

    def operand(self) -> Node:
        t = self.tok
        if t.kind == "op" and t.text == "(":
            self.nest()
            self.advance()
            node = self.expr()
            self.depth -= 1
            if not self.at("op", ")"):
                raise self.fail("expected ')'")
            self.advance()
            return node
        if t.kind == "op" and t.text == "[":
            return Literal(self.list_literal())
        if t.kind == "name" and t.text in ("True", "False", "None"):
            raise self.fail(f"write '{'null' if t.text == 'None' else t.text.lower()}'")
        if t.kind == "name":
            self.advance()
            self.names.add(t.text)
            return Name(t.text)
        return Literal(self.literal("expected a value (a name, a quoted text, a number or a list)"))

    def literal(self, expected: str) -> Value:
        t = self.tok
        if t.kind in ("str", "num"):
            self.advance()
            return t.value
        if t.kind == "kw" and t.text in ("true", "false", "null"):
            self.advance()
            return {"true": True, "false": False, "null": None}[t.text]
        raise self.fail(expected)

    def list_literal(self) -> tuple[object, ...]:
        self.advance()
        items: list[object] = []
        while not self.at("op", "]"):
            items.append(self.literal("expected a quoted text, a number, true, false or null"))
            if self.at("op", ","):
                self.advance()
            elif not self.at("op", "]"):
                raise self.fail("expected ',' or ']'")
        self.advance()
        return tuple(items)


# --- evaluation -------------------------------------------------------------------------------


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _eq(a: object, b: object) -> bool:
    """Equality that keeps booleans, numbers and texts apart (so `1 != true`, `1 != '1'`)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _contains(container: object, item: object) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if not isinstance(container, list | tuple | set | frozenset):
        return False
    if isinstance(item, list | tuple):
        return any(_eq(x, c) for x in item for c in container)
    return any(_eq(item, c) for c in container)


def _ordered(op: str, a: object, b: object) -> bool:
    if a is None or b is None:
        return False
    if not (
        (_is_number(a) and _is_number(b))
        or (isinstance(a, str) and isinstance(b, str))
        or (type(a) is type(b) and not isinstance(a, bool | list | tuple))
    ):
        return False
    try:
        if op == "<":
            return bool(a < b)  # type: ignore[operator]
        if op == "<=":
            return bool(a <= b)  # type: ignore[operator]
        if op == ">":
            return bool(a > b)  # type: ignore[operator]
        return bool(a >= b)  # type: ignore[operator]
    except TypeError:
        return False


def _truthy(v: object) -> bool:
    if v is None or v is False:
        return False
    if v is True:
        return True
    try:
        return bool(v)
    except Exception:
        return False


Predicate = Callable[[Env], bool]


def _compile_value(node: Node) -> Evaluator:
    """The value of an operand: a name's value, a literal, or a nested condition's truth."""
    if isinstance(node, Literal):
        value = node.value
        return lambda env: value
    if isinstance(node, Name):
        name = node.name
        return lambda env: env.get(name)
    return _compile_predicate(node)


def _compile_predicate(node: Node) -> Predicate:
    """Turn the tree into nested closures: one call per node, no dispatch at evaluation time."""
    if isinstance(node, Not):
        inner = _compile_predicate(node.operand)
        return lambda env: not inner(env)
    if isinstance(node, BoolOp):
        return _compile_bool_op(node)
    if isinstance(node, Compare):
        return _compile_compare(node)
    value = _compile_value(node)
    return lambda env: _truthy(value(env))


def _compile_bool_op(node: BoolOp) -> Predicate:
    parts = tuple(_compile_predicate(o) for o in node.operands)
    if len(parts) == 2:
        a, b = parts
        if node.op == "and":
            return lambda env: a(env) and b(env)
        return lambda env: a(env) or b(env)
    if node.op == "and":

        def all_of(env: Env) -> bool:
            return all(p(env) for p in parts)

        return all_of

    def any_of(env: Env) -> bool:
        return any(p(env) for p in parts)

    return any_of


def _is_null_literal(node: Node) -> bool:
    return isinstance(node, Literal) and node.value is None


def _compile_compare(node: Compare) -> Predicate:
    op, left_node, right_node = node.op, node.left, node.right
    if op in ("==", "!=") and (_is_null_literal(left_node) or _is_null_literal(right_node)):
        # `x == null` / `x != null` are the only comparisons that look at null itself.
        other = _compile_value(right_node if _is_null_literal(left_node) else left_node)
        if op == "==":
            return lambda env: other(env) is None
        return lambda env: other(env) is not None
    if isinstance(left_node, Name) and isinstance(right_node, Literal):
        const = right_node.value
        if op in ("in", "not in") and isinstance(const, tuple):
            if all(isinstance(v, str) for v in const):
                texts = frozenset(v for v in const if isinstance(v, str))
                return _compile_name_in_texts(left_node.name, texts, op == "not in")
        elif op in ("==", "!=") and isinstance(const, str):
            name, negate = left_node.name, op == "!="
            # str == anything else is False, so this matches _eq for a text constant.
            return lambda env: (v := env.get(name)) is not None and (v == const) is not negate
    left, right = _compile_value(left_node), _compile_value(right_node)

    def both(env: Env) -> tuple[object, object] | None:
        a, b = left(env), right(env)
        return None if a is None or b is None else (a, b)

    if op == "==":
        return lambda env: (ab := both(env)) is not None and _eq(*ab)
    if op == "!=":
        return lambda env: (ab := both(env)) is not None and not _eq(*ab)
    if op == "in":
        return lambda env: (ab := both(env)) is not None and _contains(ab[1], ab[0])
    if op == "not in":
        return lambda env: (ab := both(env)) is not None and not _contains(ab[1], ab[0])
    return lambda env: (ab := both(env)) is not None and _ordered(op, ab[0], ab[1])


def _compile_name_in_texts(name: str, texts: frozenset[str], negate: bool) -> Predicate:
    """Fast path for the most common form, `answer in ['a', 'b']`."""

    def name_in_texts(env: Env) -> bool:
        v = env.get(name)
        if v is None:
            return False
        if isinstance(v, str):
            return (v in texts) is not negate
        if isinstance(v, list | tuple):
            return any(isinstance(x, str) and x in texts for x in v) is not negate
        return negate

    return name_in_texts


@dataclass(frozen=True, slots=True)
class Expr:
    """A compiled expression: compile once with `compile_expr`, evaluate many times."""

    source: str
    names: frozenset[str]
    """Every name the expression refers to."""
    node: Node = field(repr=False, compare=False)
    _fn: Predicate = field(repr=False, compare=False)

    def evaluate(self, env: Env) -> bool:
        """True when the expression holds for `env`; missing names are null; never raises."""
        try:
            return self._fn(env) is True
        except Exception:
            return False


def compile_expr(source: str) -> Expr:
    """Parse `source`; raises ExprError pointing at the offending token."""
    if not isinstance(source, str):
        raise ExprError("an expression must be a text", 0)
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExprError(f"expression is longer than {MAX_SOURCE_LENGTH} characters", 0)
    parser = _Parser(source)
    node = parser.parse()
    return Expr(source, frozenset(parser.names), node, _compile_predicate(node))
