"""Fraud rules: a safe expression language, YAML rule sets, decisions, hot reload, backtest.

Analysts write rules over feature values, payment fields and the model score; a rule set combines
them with the score into **allow / review / block**.  Nothing here calls ``eval`` or ``exec``: an
expression is tokenised and parsed by the recursive-descent parser below into a tree of the node
classes of this module, type-checked, and evaluated with numpy over whole columns.

Grammar (``docs/fraud.md`` has the user-facing version)::

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum [("<" | "<=" | ">" | ">=" | "==" | "!=") sum]
                | sum ["not"] "in" "[" [literal ("," literal)* [","]] "]"
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | atom
    atom       := NUMBER | STRING | NAME | "(" condition ")"
    literal    := ["-"] NUMBER | STRING

NUMBER is decimal (``5``, ``0.9``, ``10_000``, ``1e6``), STRING is single- or double-quoted without
escapes, NAME is a field of :data:`FIELDS`.  Everything else — attribute access, calls,
subscripts, lambdas, ``**``, Python keywords, dunder names — is refused with the column where it
appears.  Types are checked at load time: arithmetic and ordering need numbers, strings support
``==``, ``!=`` and ``in``, ``and``/``or``/``not`` need conditions, and a rule's expression must be a
condition.  So every error (unknown field, parse error, type error) happens when a rule set is
loaded, never while scoring.

Evaluation: comparisons are elementwise over float64 numbers (exact for integers below 2**53, so
for any ``amount_minor``; rules decide, they never compute money); ``x / 0`` is 0 (as the ratio
features); overflow gives ±inf, never an error; a missing string field (a UPI payment has no
``card_bin``) is the empty string ``""``; a comparison with NaN is false.

Decision precedence (first match wins, see :func:`RuleSet.decide`):

1. a **block** rule hits → block;
2. an **allow** rule hits → allow (a whitelist: it overrides the model score and review rules,
   never a block rule);
3. score ≥ ``thresholds.block`` → block;
4. a **review** rule hits → review;
5. score ≥ ``thresholds.review`` → review;
6. otherwise allow.

``priority`` (higher first, then file order) does not change the decision; it picks which of the
hitting rules of the deciding action is reported as the reason.

Money: ``amount_minor`` is integer paise; the backtest sums it as int64, never as a float.
"""

from __future__ import annotations

import difflib
import hashlib
import keyword
import logging
import math
import os
import re
import string
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]
import yaml

from fraud.features import FEATURES, LABEL_COLUMN

log = logging.getLogger(__name__)

Action = Literal["allow", "review", "block"]
ACTIONS: tuple[Action, ...] = ("allow", "review", "block")
#: Integer codes of the decisions in :class:`Decisions` (higher is stricter).
ALLOW, REVIEW, BLOCK = 0, 1, 2
ACTION_CODES: dict[Action, int] = {"allow": ALLOW, "review": REVIEW, "block": BLOCK}

Kind = Literal["number", "string", "condition"]

MAX_EXPRESSION_CHARS = 2_000
_SMALL_BATCH = 64
MAX_NESTING = 40


@dataclass(frozen=True)
class FieldInfo:
    """A name a rule may use: its type, unit and meaning."""

    name: str
    kind: Literal["number", "string"]
    unit: str
    description: str


def _fields() -> dict[str, FieldInfo]:
    out: dict[str, FieldInfo] = {
        "score": FieldInfo("score", "number", "probability 0-1", "the model's fraud score"),
        "amount_minor": FieldInfo(
            "amount_minor", "number", "paise", "payment amount in minor units (₹1 = 100 paise)"
        ),
    }
    for name, description in (
        ("method", "payment method: card, upi, netbanking or wallet"),
        ("currency", "ISO 4217 code, e.g. INR"),
        ("card_bin", '6-digit card BIN ("" when not a card payment)'),
        ("card_last4", 'last four card digits ("" when not a card payment)'),
        ("vpa", 'UPI virtual payment address ("" when not UPI)'),
        ("device_id", "device the payment came from"),
        ("ip", "IPv4 address the payment came from"),
    ):
        out[name] = FieldInfo(name, "string", "text", description)
    for name, feature in FEATURES.items():
        out[name] = FieldInfo(name, "number", feature.unit, feature.description)
    return out


#: Every name a rule may use: ``score``, the payment fields, and the features of
#: :data:`fraud.features.FEATURES`.
FIELDS: dict[str, FieldInfo] = _fields()


# ---------------------------------------------------------------------------------------------
# Errors


class RuleError(ValueError):
    """A rule set that cannot be loaded.  The message names the file, the rule, and — for an
    expression — the column (1-based) with a caret under the expression."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        rule: str | None = None,
        line: int | None = None,
        column: int | None = None,
        expression: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.rule = rule
        self.line = line
        self.column = column
        self.expression = expression
        super().__init__(self._render())

    def _render(self) -> str:
        where = [self.source] if self.source else []
        if self.rule is not None:
            where.append(f"rule {self.rule!r}")
        if self.line is not None:
            where.append(f"line {self.line}")
        head = ", ".join(where)
        text = self.reason
        if self.column is not None:
            text = f"column {self.column}: {text}"
        text = f"{head}: {text}" if head else text
        if self.expression is not None and self.column is not None:
            one_line = self.expression.replace("\n", " ")
            text += f"\n    {one_line}\n    {' ' * (self.column - 1)}^"
        return text

    def located(self, *, source: str, rule: str, line: int | None) -> RuleError:
        """The same error, naming the file, the rule and its line."""
        return RuleError(
            self.reason,
            source=source,
            rule=rule,
            line=line,
            column=self.column,
            expression=self.expression,
        )


class RuleInputError(ValueError):
    """A frame given to a rule set lacks a column or holds the wrong type (the caller's data)."""


# ---------------------------------------------------------------------------------------------
# Tokenizer


@dataclass(frozen=True)
class Token:
    kind: Literal["number", "string", "name", "op", "end"]
    text: str
    pos: int  # 0-based offset in the expression
    value: float | str | None = None


_WORDS = {"and", "or", "not", "in"}
_COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
_TWO_CHAR_OPS = ("<=", ">=", "==", "!=")
_ONE_CHAR_OPS = "<>+-*/()[],"
_DIGITS = frozenset(string.digits)
_NAME_START = frozenset(string.ascii_letters + "_")
_NUMBER = re.compile(r"\d(?:_?\d)*(?:\.\d(?:_?\d)*)?(?:[eE][+-]?\d+)?", re.ASCII)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_REFUSED_OPS: dict[str, str] = {
    "**": "'**' is not allowed; use multiplication",
    "//": "'//' is not allowed; use '/'",
    "&&": "use 'and' instead of '&&'",
    "||": "use 'or' instead of '||'",
    "%": "'%' is not allowed",
    "&": "use 'and' instead of '&'",
    "|": "use 'or' instead of '|'",
    "!": "use 'not' instead of '!'",
    "=": "use '==' to compare ('=' is not allowed)",
    "~": "'~' is not allowed; use 'not'",
    "^": "'^' is not allowed",
    "@": "'@' is not allowed",
    ":": "':' is not allowed (no lambdas, slices or dicts)",
    "{": "'{' is not allowed; lists are written [a, b]",
    "}": "'}' is not allowed",
    ";": "';' is not allowed",
}


class _ExprError(Exception):
    """A problem at a position of one expression; turned into :class:`RuleError` by the loader."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


def _refuse(message: str, pos: int, tokens: list[Token]) -> _ExprError:
    """The error for a refused character at ``pos`` — or, if a Python keyword such as ``lambda``
    or a dunder name came before it, the error for that name (the more useful message)."""
    for tok in tokens:
        if tok.kind == "name" and tok.text not in _WORDS and keyword.iskeyword(tok.text):
            return _ExprError(_keyword_message(tok.text), tok.pos)
        if tok.kind == "name" and tok.text.startswith("__"):
            return _ExprError(_dunder_message(tok.text), tok.pos)
    return _ExprError(message, pos)


def _dunder_message(word: str) -> str:
    return f"{word!r}: names starting with '__' are not allowed"


def _keyword_message(word: str) -> str:
    return (
        f"{word!r} is not part of the rule language (allowed: comparisons, and/or/not, "
        "+ - * /, in [...], parentheses)"
    )


def tokenize(text: str) -> list[Token]:  # noqa: PLR0912, PLR0915 (one branch per token class)
    """Split an expression into tokens; raises on any character outside the language."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in _DIGITS:
            m = _NUMBER.match(text, i)
            assert m is not None
            raw = m.group()
            value = float(raw.replace("_", ""))  # rule arithmetic is float64, see evaluate
            end = m.end()
            if end < n and (text[end] in _NAME_START or text[end] in _DIGITS):
                raise _ExprError(f"malformed number {text[i : end + 1]!r}", i)
            tokens.append(Token("number", raw, i, value))
            i = end
            continue
        if ch in _NAME_START:
            m = _NAME.match(text, i)
            assert m is not None
            tokens.append(Token("name", m.group(), i))
            i = m.end()
            continue
        if ch in "'\"":
            close = text.find(ch, i + 1)
            if close < 0:
                raise _ExprError("unterminated string", i)
            body = text[i + 1 : close]
            if "\\" in body:
                raise _ExprError("backslash escapes are not supported in strings", i)
            tokens.append(Token("string", text[i : close + 1], i, body))
            i = close + 1
            continue
        if ch == ".":
            if i + 1 < n and text[i + 1] in _DIGITS:
                raise _ExprError("write decimals with a leading digit (0.5, not .5)", i)
            raise _refuse("attribute access ('.') is not allowed", i, tokens)
        two = text[i : i + 2]
        if two in _REFUSED_OPS:
            raise _refuse(_REFUSED_OPS[two], i, tokens)
        if two in _TWO_CHAR_OPS:
            tokens.append(Token("op", two, i))
            i += 2
            continue
        if ch in _REFUSED_OPS:
            raise _refuse(_REFUSED_OPS[ch], i, tokens)
        if ch in _ONE_CHAR_OPS:
            tokens.append(Token("op", ch, i))
            i += 1
            continue
        raise _refuse(f"unexpected character {ch!r}", i, tokens)
    tokens.append(Token("end", "", n))
    return tokens


# ---------------------------------------------------------------------------------------------
# Syntax tree


@dataclass(frozen=True)
class Num:
    value: float
    pos: int


@dataclass(frozen=True)
class Str:
    value: str
    pos: int


@dataclass(frozen=True)
class Name:
    name: str
    pos: int


@dataclass(frozen=True)
class Neg:
    operand: Node
    pos: int


@dataclass(frozen=True)
class Arith:
    op: Literal["+", "-", "*", "/"]
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True)
class Compare:
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True)
class InList:
    operand: Node
    values: tuple[float | str, ...]
    negated: bool
    pos: int


@dataclass(frozen=True)
class BoolOp:
    op: Literal["and", "or"]
    operands: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Not:
    operand: Node
    pos: int


Node = Num | Str | Name | Neg | Arith | Compare | InList | BoolOp | Not


class _Parser:
    """Recursive descent over the tokens of one expression (see the module grammar)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _is(self, kind: str, text: str | None = None) -> bool:
        tok = self.tok
        return tok.kind == kind and (text is None or tok.text == text)

    def _expect_op(self, text: str, what: str) -> Token:
        if not self._is("op", text):
            raise _ExprError(f"expected {what}, found {self._describe(self.tok)}", self.tok.pos)
        return self._take()

    @staticmethod
    def _describe(tok: Token) -> str:
        return "the end of the expression" if tok.kind == "end" else repr(tok.text)

    def parse(self) -> Node:
        if not self.text.strip():
            raise _ExprError("the expression is empty", 0)
        node = self._or()
        tok = self.tok
        if tok.kind == "name" and tok.text not in _WORDS and keyword.iskeyword(tok.text):
            raise _ExprError(_keyword_message(tok.text), tok.pos)
        if tok.kind != "end":
            raise _ExprError(f"unexpected {self._describe(tok)}", tok.pos)
        return node

    def _nested(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _ExprError(f"the expression nests deeper than {MAX_NESTING} levels", pos)

    def _or(self) -> Node:
        first = self._and()
        operands = [first]
        while self._is("name", "or"):
            self._take()
            operands.append(self._and())
        return first if len(operands) == 1 else BoolOp("or", tuple(operands), _pos(first))

    def _and(self) -> Node:
        first = self._not()
        operands = [first]
        while self._is("name", "and"):
            self._take()
            operands.append(self._not())
        return first if len(operands) == 1 else BoolOp("and", tuple(operands), _pos(first))

    def _not(self) -> Node:
        if self._is("name", "not"):
            tok = self._take()
            self._nested(tok.pos)
            operand = self._not()
            self.depth -= 1
            return Not(operand, tok.pos)
        return self._comparison()

    def _comparison(self) -> Node:
        left = self._sum()
        tok = self.tok
        if tok.kind == "op" and tok.text in _COMPARISONS:
            self._take()
            right = self._sum()
            if self.tok.kind == "op" and self.tok.text in _COMPARISONS:
                raise _ExprError(
                    "chained comparisons are not allowed; join them with 'and'", self.tok.pos
                )
            op: Any = tok.text
            return Compare(op, left, right, tok.pos)
        negated = False
        if self._is("name", "not") and self.tokens[self.i + 1].text == "in":
            self._take()
            negated = True
        if self._is("name", "in"):
            in_tok = self._take()
            values = self._list()
            return InList(left, values, negated, in_tok.pos)
        if negated:
            raise _ExprError("expected 'in' after 'not'", self.tok.pos)
        return left

    def _list(self) -> tuple[float | str, ...]:
        open_tok = self.tok
        if not self._is("op", "["):
            raise _ExprError(
                f'\'in\' takes a literal list such as ["upi", "card"], found '
                f"{self._describe(open_tok)}",
                open_tok.pos,
            )
        self._take()
        values: list[float | str] = []
        while not self._is("op", "]"):
            tok = self.tok
            sign = 1
            if self._is("op", "-"):
                self._take()
                sign = -1
                tok = self.tok
            if tok.kind == "number" and isinstance(tok.value, float):
                values.append(sign * tok.value)
            elif tok.kind == "string" and sign == 1 and isinstance(tok.value, str):
                values.append(tok.value)
            else:
                raise _ExprError(
                    f"a list holds only number or string literals, found {self._describe(tok)}",
                    tok.pos,
                )
            self._take()
            if self._is("op", ","):
                self._take()
            elif not self._is("op", "]"):
                raise _ExprError(
                    f"expected ',' or ']' in the list, found {self._describe(self.tok)}",
                    self.tok.pos,
                )
        self._take()
        return tuple(values)

    def _sum(self) -> Node:
        node = self._product()
        while self.tok.kind == "op" and self.tok.text in "+-":
            tok = self._take()
            op: Any = tok.text
            node = Arith(op, node, self._product(), tok.pos)
        return node

    def _product(self) -> Node:
        node = self._unary()
        while self.tok.kind == "op" and self.tok.text in "*/":
            tok = self._take()
            op: Any = tok.text
            node = Arith(op, node, self._unary(), tok.pos)
        return node

    def _unary(self) -> Node:
        if self._is("op", "-"):
            tok = self._take()
            self._nested(tok.pos)
            operand = self._unary()
            self.depth -= 1
            return Neg(operand, tok.pos)
        return self._postfix(self._atom())

    def _postfix(self, node: Node) -> Node:
        tok = self.tok
        if self._is("op", "("):
            raise _ExprError("function calls are not allowed", tok.pos)
        if self._is("op", "["):
            raise _ExprError("subscripts are not allowed", tok.pos)
        return node

    def _atom(self) -> Node:
        tok = self.tok
        if tok.kind == "number" and isinstance(tok.value, float):
            self._take()
            return Num(tok.value, tok.pos)
        if tok.kind == "string" and isinstance(tok.value, str):
            self._take()
            return Str(tok.value, tok.pos)
        if tok.kind == "name":
            word = tok.text
            if word in _WORDS:
                raise _ExprError(f"unexpected {word!r}", tok.pos)
            if keyword.iskeyword(word) or keyword.issoftkeyword(word):
                raise _ExprError(_keyword_message(word), tok.pos)
            if word.startswith("__"):
                raise _ExprError(_dunder_message(word), tok.pos)
            self._take()
            return Name(word, tok.pos)
        if self._is("op", "("):
            self._take()
            self._nested(tok.pos)
            node = self._or()
            self.depth -= 1
            self._expect_op(")", "')'")
            return node
        raise _ExprError(f"expected a value, found {self._describe(tok)}", tok.pos)


def _pos(node: Node) -> int:
    if isinstance(node, Arith | Compare):
        return _pos(node.left)
    if isinstance(node, InList):
        return _pos(node.operand)
    return node.pos


# ---------------------------------------------------------------------------------------------
# Type checking


def _check(node: Node, fields: Mapping[str, FieldInfo]) -> Kind:  # noqa: PLR0911, PLR0912 (per node)
    """The kind of ``node``; raises :class:`_ExprError` on an unknown name or a type mismatch."""
    match node:
        case Num():
            return "number"
        case Str():
            return "string"
        case Name(name=name, pos=pos):
            info = fields.get(name)
            if info is None:
                close = difflib.get_close_matches(name, list(fields), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise _ExprError(
                    f"unknown field {name!r}{hint} (`rizzpay fraud rules fields` lists them)",
                    pos,
                )
            return info.kind
        case Neg(operand=operand, pos=pos):
            if _check(operand, fields) != "number":
                raise _ExprError("'-' needs a number", pos)
            return "number"
        case Arith(op=op, left=left, right=right, pos=pos):
            for side in (left, right):
                if _check(side, fields) != "number":
                    raise _ExprError(f"'{op}' needs numbers on both sides", _pos(side))
            return "number"
        case Compare(op=op, left=left, right=right, pos=pos):
            lk, rk = _check(left, fields), _check(right, fields)
            if "condition" in (lk, rk):
                bad = left if lk == "condition" else right
                raise _ExprError(
                    f"'{op}' compares values, not conditions; use 'and' / 'or'", _pos(bad)
                )
            if lk != rk:
                raise _ExprError(f"'{op}' compares a {lk} with a {rk}", pos)
            if lk == "string" and op not in ("==", "!="):
                raise _ExprError(f"strings support '==', '!=' and 'in', not '{op}'", pos)
            return "condition"
        case InList(operand=operand, values=values, pos=pos):
            kind = _check(operand, fields)
            if kind == "condition":
                raise _ExprError("'in' needs a value on its left, not a condition", _pos(operand))
            for v in values:
                if (kind == "string") != isinstance(v, str):
                    raise _ExprError(
                        f"'in' compares a {kind} with a list holding {v!r}; "
                        f"the list must hold {kind}s only",
                        pos,
                    )
            return "condition"
        case BoolOp(op=op, operands=operands):
            for operand in operands:
                if _check(operand, fields) != "condition":
                    raise _ExprError(
                        f"'{op}' joins conditions; this is a value (compare it, e.g. '> 0')",
                        _pos(operand),
                    )
            return "condition"
        case Not(operand=operand, pos=pos):
            if _check(operand, fields) != "condition":
                raise _ExprError(
                    "'not' needs a condition; this is a value (compare it, e.g. '== 0')", pos
                )
            return "condition"
    raise AssertionError(f"unhandled node {node!r}")  # pragma: no cover


def _names(node: Node) -> set[str]:
    match node:
        case Name(name=name):
            return {name}
        case Neg(operand=operand) | Not(operand=operand) | InList(operand=operand):
            return _names(operand)
        case Arith(left=left, right=right) | Compare(left=left, right=right):
            return _names(left) | _names(right)
        case BoolOp(operands=operands):
            return set().union(*(_names(o) for o in operands))
    return set()


@dataclass(frozen=True)
class Expression:
    """A parsed, type-checked condition and the fields it reads."""

    text: str
    tree: Node
    fields: frozenset[str]

    def evaluate(self, columns: Mapping[str, Any], n: int) -> npt.NDArray[np.bool_]:
        """The condition for ``n`` rows; ``columns`` maps each of :attr:`fields` to an array."""
        with np.errstate(all="ignore"):  # overflow to inf and NaN comparisons are defined
            result = np.asarray(_evaluate(self.tree, columns), dtype=np.bool_)
        return np.broadcast_to(result, (n,)).copy()


def compile_expression(text: str, fields: Mapping[str, FieldInfo] | None = None) -> Expression:
    """Parse and type-check a condition.  Raises :class:`RuleError` with the column."""
    if not isinstance(text, str):
        raise RuleError(f"an expression must be a string, found {type(text).__name__}")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise RuleError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    known = FIELDS if fields is None else fields
    try:
        tree = _Parser(text).parse()
        kind = _check(tree, known)
        if kind != "condition":
            raise _ExprError(
                f"the expression must be a condition (a comparison), not a {kind}", _pos(tree)
            )
    except _ExprError as exc:
        raise RuleError(exc.message, column=exc.pos + 1, expression=text) from None
    return Expression(text, tree, frozenset(_names(tree)))


# ---------------------------------------------------------------------------------------------
# Evaluation (numpy, elementwise over columns)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, np.ndarray) and value.dtype == object)


def _evaluate(node: Node, columns: Mapping[str, Any]) -> Any:  # noqa: PLR0911, PLR0912 (per node)
    match node:
        case Num(value=value):
            return value
        case Str(value=value):
            return value
        case Name(name=name):
            return columns[name]
        case Neg(operand=operand):
            return np.negative(_evaluate(operand, columns))
        case Arith(op=op, left=left, right=right):
            a, b = _evaluate(left, columns), _evaluate(right, columns)
            if op == "+":
                return np.add(a, b)
            if op == "-":
                return np.subtract(a, b)
            if op == "*":
                return np.multiply(a, b)
            num = np.asarray(a, dtype=np.float64)
            den = np.asarray(b, dtype=np.float64)
            num, den = np.broadcast_arrays(num, den)
            out = np.zeros(num.shape, dtype=np.float64)
            np.divide(num, den, out=out, where=den != 0)
            return out
        case Compare(op=op, left=left, right=right):
            a, b = _evaluate(left, columns), _evaluate(right, columns)
            if op == "<":
                return np.less(a, b)
            if op == "<=":
                return np.less_equal(a, b)
            if op == ">":
                return np.greater(a, b)
            if op == ">=":
                return np.greater_equal(a, b)
            if _is_text(a) or _is_text(b):
                a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
            equal = np.asarray(a == b, dtype=np.bool_)
            return equal if op == "==" else np.logical_not(equal)
        case InList(operand=operand, values=values, negated=negated):
            v = _evaluate(operand, columns)
            if np.ndim(v) == 0:
                hit: Any = v in values
            elif len(v) <= _SMALL_BATCH:  # plain Python is faster than pandas for a few rows
                members = set(values)
                hit = np.fromiter((x in members for x in v), dtype=np.bool_, count=len(v))
            else:
                hit = pd.Series(v).isin(list(values)).to_numpy(dtype=np.bool_)
            return np.logical_not(hit) if negated else hit
        case BoolOp(op=op, operands=operands):
            combine = np.logical_and if op == "and" else np.logical_or
            result = _evaluate(operands[0], columns)
            for operand in operands[1:]:
                result = combine(result, _evaluate(operand, columns))
            return result
        case Not(operand=operand):
            return np.logical_not(_evaluate(operand, columns))
    raise AssertionError(f"unhandled node {node!r}")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# Rules and rule sets


@dataclass(frozen=True)
class Rule:
    """One analyst rule: when ``expression`` holds, it votes for ``action``."""

    name: str
    expression: Expression
    action: Action
    priority: int = 0
    description: str = ""
    line: int | None = None  # line of the rule in its YAML file


@dataclass(frozen=True)
class Thresholds:
    """Model-score cut-offs (probabilities 0-1): score ≥ ``block`` blocks, score ≥ ``review``
    sends to review.  ``None`` disables that cut-off."""

    review: float | None = None
    block: float | None = None


@dataclass(frozen=True)
class Decisions:
    """Decisions for a batch of payments, row-aligned with the input."""

    action: npt.NDArray[np.int8]  # ALLOW, REVIEW or BLOCK
    reason: npt.NDArray[np.object_]  # deciding rule name, "score>=block", "score>=review" or ""
    hits: dict[str, npt.NDArray[np.bool_]]  # rule name -> which rows it hit

    def action_names(self) -> list[str]:
        return [ACTIONS[int(a)] for a in self.action]


@dataclass(frozen=True)
class Decision:
    """The decision for one payment."""

    action: Action
    reason: str  # the deciding rule, "score>=block", "score>=review" or "" (nothing hit)
    hits: tuple[str, ...]  # every rule that hit, in priority order
    score: float


SCORE_BLOCK_REASON = "score>=block"
SCORE_REVIEW_REASON = "score>=review"


@dataclass(frozen=True)
class RuleSet:
    """A loaded, checked rule set."""

    rules: tuple[Rule, ...]
    thresholds: Thresholds
    source: str = "<rules>"
    sha256: str = ""
    description: str = ""

    @property
    def fields(self) -> frozenset[str]:
        """Every field the rules read, plus ``score``."""
        names: set[str] = {"score"}
        for rule in self.rules:
            names |= rule.expression.fields
        return frozenset(names)

    @property
    def features(self) -> list[str]:
        """The features of :data:`fraud.features.FEATURES` the rules read, in registry order."""
        used = self.fields
        return [name for name in FEATURES if name in used]

    def ordered(self) -> list[Rule]:
        """Rules by priority (higher first), then file order."""
        ranked = sorted(enumerate(self.rules), key=lambda pair: (-pair[1].priority, pair[0]))
        return [rule for _, rule in ranked]

    def columns(self, frame: pd.DataFrame) -> dict[str, Any]:
        """The arrays :meth:`decide` needs, taken from ``frame``.

        Numbers become float64 (exact for integers below 2**53, so for any amount in paise;
        rules decide, they never compute money); strings are object arrays with missing values
        as ``""``.  Raises :class:`RuleInputError` naming a missing or mistyped column.
        """
        missing = sorted(self.fields - set(frame.columns))
        if missing:
            raise RuleInputError(f"missing column(s) for the rules: {', '.join(missing)}")
        out: dict[str, Any] = {}
        for name in sorted(self.fields):
            values = frame[name]
            if FIELDS[name].kind == "number":
                if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(
                    values.dtype
                ):
                    raise RuleInputError(f"column {name!r} must be numeric, found {values.dtype}")
                out[name] = values.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                text = values.astype(object).where(values.notna(), "").astype(str)
                out[name] = text.to_numpy(dtype=object)
        return out

    def decide(self, columns: Mapping[str, Any], n: int) -> Decisions:
        """Decide ``n`` payments.  ``columns`` maps each of :attr:`fields` to ``n`` values (see
        :meth:`columns`); precedence is in the module docstring."""
        score = np.asarray(columns["score"], dtype=np.float64)
        score = np.broadcast_to(score, (n,))
        hits: dict[str, npt.NDArray[np.bool_]] = {}
        for rule in self.rules:
            hits[rule.name] = rule.expression.evaluate(columns, n)
        reason = np.full(n, "", dtype=object)
        decided = np.zeros(n, dtype=np.bool_)
        action = np.full(n, ALLOW, dtype=np.int8)
        ordered = self.ordered()

        def by_rules(kind: Action) -> None:
            for rule in ordered:
                if rule.action != kind:
                    continue
                take = hits[rule.name] & ~decided
                action[take] = ACTION_CODES[kind]
                reason[take] = rule.name
                decided[take] = True

        def by_score(threshold: float | None, code: int, why: str) -> None:
            if threshold is None:
                return
            with np.errstate(invalid="ignore"):
                take = (score >= threshold) & ~decided
            action[take] = code
            reason[take] = why
            decided[take] = True

        by_rules("block")
        by_rules("allow")
        by_score(self.thresholds.block, BLOCK, SCORE_BLOCK_REASON)
        by_rules("review")
        by_score(self.thresholds.review, REVIEW, SCORE_REVIEW_REASON)
        return Decisions(action, reason, hits)

    def decide_frame(self, frame: pd.DataFrame) -> Decisions:
        """:meth:`decide` on the columns of ``frame`` (which needs a ``score`` column)."""
        return self.decide(self.columns(frame), len(frame))

    def decide_one(self, values: Mapping[str, object]) -> Decision:
        """Decide one payment from a mapping of field name to value (``score`` included);
        missing strings may be ``None``.  Raises :class:`RuleInputError` for a missing field."""
        missing = sorted(self.fields - set(values))
        if missing:
            raise RuleInputError(f"missing field(s) for the rules: {', '.join(missing)}")
        columns: dict[str, Any] = {}
        for name in self.fields:
            v = values[name]
            if FIELDS[name].kind == "string":
                columns[name] = np.asarray(["" if v is None else str(v)], dtype=object)
            elif isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
                raise RuleInputError(f"field {name!r} must be a number, got {v!r}")
            else:
                columns[name] = np.asarray([v], dtype=np.float64)
        decisions = self.decide(columns, 1)
        hit = tuple(r.name for r in self.ordered() if bool(decisions.hits[r.name][0]))
        return Decision(
            ACTIONS[int(decisions.action[0])],
            str(decisions.reason[0]),
            hit,
            float(np.asarray(values["score"], dtype=np.float64)),
        )


_TOP_KEYS = {"version", "description", "thresholds", "rules"}
_RULE_KEYS = {"name", "expression", "action", "priority", "description"}


def _rule_lines(text: str) -> list[int]:
    """1-based YAML line of each item of the top-level ``rules`` list (best effort)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == "rules" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _threshold(value: object, name: str, source: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise RuleError(
            f"thresholds.{name} must be a number in [0, 1], found {value!r}", source=source
        )
    if not 0 <= value <= 1:
        raise RuleError(
            f"thresholds.{name} must be in [0, 1] (a probability), found {value}", source=source
        )
    return float(value)


def _parse_thresholds(raw: object, source: str) -> Thresholds:
    raw = raw or {}
    if not isinstance(raw, dict) or set(raw) - {"review", "block"}:
        raise RuleError(
            "thresholds must be a mapping with 'review' and/or 'block' (model score cut-offs)",
            source=source,
        )
    thresholds = Thresholds(
        review=_threshold(raw.get("review"), "review", source),
        block=_threshold(raw.get("block"), "block", source),
    )
    if (
        thresholds.review is not None
        and thresholds.block is not None
        and thresholds.review > thresholds.block
    ):
        raise RuleError(
            f"thresholds.review ({thresholds.review}) must not exceed thresholds.block "
            f"({thresholds.block})",
            source=source,
        )
    return thresholds


def _parse_rule(raw: object, index: int, line: int | None, source: str) -> Rule:
    """One item of the ``rules`` list; ``index`` is 0-based, ``line`` its YAML line."""
    label = f"#{index + 1}"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str) and raw["name"].strip():
        label = raw["name"]

    def fail(message: str) -> RuleError:
        return RuleError(message, source=source, rule=label, line=line)

    if not isinstance(raw, dict):
        raise fail("a rule is a mapping with name, expression and action")
    unknown = sorted(set(map(str, raw)) - _RULE_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_RULE_KEYS))}")
    for key in ("name", "expression", "action"):
        if key not in raw:
            raise fail(f"missing {key!r}")
    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        raise fail("'name' must be a non-empty string")
    action = raw["action"]
    if action not in ACTIONS:
        raise fail(f"action must be one of {', '.join(ACTIONS)}, found {action!r}")
    priority = raw.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise fail(f"priority must be an integer, found {priority!r}")
    description = raw.get("description", "") or ""
    if not isinstance(description, str):
        raise fail("description must be a string")
    try:
        expression = compile_expression(raw["expression"])
    except RuleError as exc:
        raise exc.located(source=source, rule=name, line=line) from None
    return Rule(name, expression, action, priority, description.strip(), line)


def parse_rule_set(text: str, *, source: str = "<rules>") -> RuleSet:
    """Parse and check a YAML rule set (see ``docs/fraud.md`` and ``fraud/rulesets/example.yaml``).

    Raises :class:`RuleError` naming the file, the rule, its line and — for an expression — the
    column, for: YAML syntax errors, unknown or missing keys, an unknown action, duplicate rule
    names, bad thresholds, parse errors, unknown fields and type errors.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleError(f"not valid YAML: {problem}", source=source, line=line) from None
    if not isinstance(data, dict):
        raise RuleError("a rule set is a YAML mapping with 'thresholds' and 'rules'", source=source)
    unknown = sorted(set(map(str, data)) - _TOP_KEYS)
    if unknown:
        raise RuleError(
            f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_TOP_KEYS))}",
            source=source,
        )
    if data.get("version", 1) != 1:
        raise RuleError(f"version {data.get('version')!r} is not supported (use 1)", source=source)
    thresholds = _parse_thresholds(data.get("thresholds"), source)
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        raise RuleError("'rules' must be a list of rules", source=source)
    lines = _rule_lines(text)
    rules: list[Rule] = []
    for i, raw in enumerate(raw_rules):
        line = lines[i] if i < len(lines) else None
        rule = _parse_rule(raw, i, line, source)
        if any(r.name == rule.name for r in rules):
            raise RuleError("duplicate rule name", source=source, rule=rule.name, line=line)
        rules.append(rule)
    return RuleSet(
        rules=tuple(rules),
        thresholds=thresholds,
        source=source,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        description=str(data.get("description", "") or "").strip(),
    )


def load_rule_set(path: Path) -> RuleSet:
    """Read and parse a YAML rule file; raises :class:`RuleError` (also for an unreadable file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read the rule file: {exc}", source=str(path)) from None
    return parse_rule_set(text, source=str(path))


# ---------------------------------------------------------------------------------------------
# Hot reload


class RuleSetHolder:
    """The current rule set of a file, reloaded when the file's content changes.

    :meth:`get` re-reads the file at most every ``min_interval_s`` seconds (monotonic clock)
    and hashes it (rule files are a few KB); when the SHA-256 differs from the loaded set's, it
    parses the new text.  A new set that fails to load is logged (once per bad content, with the
    error) and the old set stays in force, so a bad edit never takes scoring down.  The first load
    in the constructor raises :class:`RuleError` (there is no old set to keep).  Thread-safe.
    """

    def __init__(
        self,
        path: Path,
        *,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._current = load_rule_set(path)
        self._bad_sha256: str | None = None
        self._checked_at = clock()
        self.last_error: str | None = None

    @property
    def current(self) -> RuleSet:
        """The rule set in force (without checking the file)."""
        return self._current

    def get(self) -> RuleSet:
        """The rule set in force, after re-reading the file if ``min_interval_s`` has passed."""
        if self._clock() - self._checked_at >= self._min_interval_s:
            self.refresh()
        return self._current

    def refresh(self) -> bool:
        """Check the file now; returns whether a new rule set was loaded."""
        with self._lock:
            self._checked_at = self._clock()
            try:
                data = self._path.read_bytes()
            except OSError as exc:
                message = f"cannot read {self._path}: {exc}"
                if message != self.last_error:
                    log.warning("%s; keeping rule set %s", message, self._current.sha256[:12])
                self.last_error = message
                return False
            digest = hashlib.sha256(data).hexdigest()
            if digest in (self._current.sha256, self._bad_sha256):
                return False
            try:
                new = parse_rule_set(data.decode("utf-8"), source=str(self._path))
            except (RuleError, UnicodeDecodeError) as exc:
                self._bad_sha256 = digest
                self.last_error = str(exc)
                log.warning(
                    "rule file %s changed but does not load; keeping rule set %s (%d rules): %s",
                    self._path,
                    self._current.sha256[:12],
                    len(self._current.rules),
                    exc,
                )
                return False
            old = self._current
            self._current = new
            self._bad_sha256 = None
            self.last_error = None
            log.info(
                "reloaded rule file %s: %s (%d rules) replaces %s",
                self._path,
                new.sha256[:12],
                len(new.rules),
                old.sha256[:12],
            )
            return True


# ---------------------------------------------------------------------------------------------
# Backtest


@dataclass(frozen=True)
class Outcome:
    """Payments that received one decision; amounts in paise (int)."""

    payments: int = 0
    frauds: int = 0
    fraud_amount_minor: int = 0
    legitimate_amount_minor: int = 0

    @property
    def legitimate(self) -> int:
        return self.payments - self.frauds


@dataclass(frozen=True)
class RuleStats:
    """How one rule fared: ``hits`` payments matched it (``frauds`` of them fraudulent), and it
    was the reported reason of ``decided`` decisions."""

    name: str
    action: Action
    priority: int
    hits: int
    frauds: int
    fraud_amount_minor: int
    decided: int

    @property
    def precision(self) -> float:
        """Share of hits that are fraud (0 when the rule never hits)."""
        return self.frauds / self.hits if self.hits else 0.0


@dataclass(frozen=True)
class Decided:
    """Outcomes by decision for one way of deciding."""

    blocked: Outcome
    reviewed: Outcome
    allowed: Outcome


@dataclass(frozen=True)
class BacktestReport:
    """What a rule set would have done to a history of labelled payments.

    *Caught* frauds are those **blocked**; *false positives* are legitimate payments blocked;
    *money saved* is the amount of caught frauds and *money wrongly blocked* the amount of
    legitimate payments blocked (paise, int).  Reviewed payments are counted separately (an
    analyst decides them).  ``baseline`` is the same scores with the thresholds only (no rules),
    so the table shows what the rules add.
    """

    source: str
    sha256: str
    thresholds: Thresholds
    payments: int
    frauds: int
    fraud_amount_minor: int
    with_rules: Decided
    baseline: Decided
    rules: list[RuleStats]
    by_score_block: int  # decisions whose reason is the block threshold
    by_score_review: int
    notes: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> int:
        return self.with_rules.blocked.payments

    @property
    def reviewed(self) -> int:
        return self.with_rules.reviewed.payments

    @property
    def frauds_caught(self) -> int:
        return self.with_rules.blocked.frauds

    @property
    def false_positives(self) -> int:
        return self.with_rules.blocked.legitimate

    @property
    def money_saved_minor(self) -> int:
        return self.with_rules.blocked.fraud_amount_minor

    @property
    def money_wrongly_blocked_minor(self) -> int:
        return self.with_rules.blocked.legitimate_amount_minor


def _outcome(mask: npt.NDArray[np.bool_], labels: npt.NDArray[np.int8], amount: Any) -> Outcome:
    fraud = mask & (labels == 1)
    legit = mask & (labels == 0)
    return Outcome(
        payments=int(mask.sum()),
        frauds=int(fraud.sum()),
        fraud_amount_minor=int(amount[fraud].sum(dtype=np.int64)),
        legitimate_amount_minor=int(amount[legit].sum(dtype=np.int64)),
    )


def _decided(action: npt.NDArray[np.int8], labels: npt.NDArray[np.int8], amount: Any) -> Decided:
    return Decided(
        blocked=_outcome(action == BLOCK, labels, amount),
        reviewed=_outcome(action == REVIEW, labels, amount),
        allowed=_outcome(action == ALLOW, labels, amount),
    )


def backtest(rule_set: RuleSet, frame: pd.DataFrame) -> BacktestReport:
    """Apply ``rule_set`` to every row of ``frame`` and count the outcomes.

    ``frame`` needs the rule set's :attr:`~RuleSet.fields` (features, payment fields and
    ``score``, a probability), ``is_fraud`` (0/1) and ``amount_minor`` (integer paise).  Raises
    :class:`RuleInputError` naming a missing or mistyped column.
    """
    for column in (LABEL_COLUMN, "amount_minor"):
        if column not in frame.columns:
            raise RuleInputError(f"missing column {column!r} needed by the backtest")
    if not pd.api.types.is_integer_dtype(frame["amount_minor"].dtype):
        raise RuleInputError(
            f"column 'amount_minor' must be integer paise, found {frame['amount_minor'].dtype}"
        )
    labels = frame[LABEL_COLUMN].to_numpy(dtype=np.int8)
    amount = frame["amount_minor"].to_numpy(dtype=np.int64)
    n = len(frame)
    columns = rule_set.columns(frame)
    decisions = rule_set.decide(columns, n)
    baseline_set = RuleSet((), rule_set.thresholds, rule_set.source, rule_set.sha256)
    baseline = baseline_set.decide({"score": columns["score"]}, n)
    stats: list[RuleStats] = []
    for rule in rule_set.ordered():
        hit = decisions.hits[rule.name]
        fraud_hit = hit & (labels == 1)
        stats.append(
            RuleStats(
                name=rule.name,
                action=rule.action,
                priority=rule.priority,
                hits=int(hit.sum()),
                frauds=int(fraud_hit.sum()),
                fraud_amount_minor=int(amount[fraud_hit].sum(dtype=np.int64)),
                decided=int((decisions.reason == rule.name).sum()),
            )
        )
    return BacktestReport(
        source=rule_set.source,
        sha256=rule_set.sha256,
        thresholds=rule_set.thresholds,
        payments=n,
        frauds=int((labels == 1).sum()),
        fraud_amount_minor=int(amount[labels == 1].sum(dtype=np.int64)),
        with_rules=_decided(decisions.action, labels, amount),
        baseline=_decided(baseline.action, labels, amount),
        rules=stats,
        by_score_block=int((decisions.reason == SCORE_BLOCK_REASON).sum()),
        by_score_review=int((decisions.reason == SCORE_REVIEW_REASON).sum()),
    )


def format_paise(amount_minor: int) -> str:
    """``123456`` → ``'₹1,234.56'``, with integer arithmetic only."""
    sign = "-" if amount_minor < 0 else ""
    rupees, paise = divmod(abs(amount_minor), 100)
    return f"{sign}₹{rupees:,}.{paise:02d}"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _summary_cells(d: Decided) -> list[str]:
    return [
        f"{d.blocked.payments:,}",
        f"{d.reviewed.payments:,}",
        f"{d.blocked.frauds:,}",
        f"{d.reviewed.frauds:,}",
        f"{d.allowed.frauds:,}",
        f"{d.blocked.legitimate:,}",
        f"{d.reviewed.legitimate:,}",
        format_paise(d.blocked.fraud_amount_minor),
        format_paise(d.reviewed.fraud_amount_minor),
        format_paise(d.blocked.legitimate_amount_minor),
        format_paise(d.allowed.fraud_amount_minor),
    ]


SUMMARY_MEASURES: tuple[str, ...] = (
    "payments blocked",
    "payments sent to review",
    "frauds caught (blocked)",
    "frauds sent to review",
    "frauds missed (allowed)",
    "false positives (legitimate blocked)",
    "legitimate sent to review",
    "money saved (fraud blocked)",
    "fraud money in review",
    "money wrongly blocked",
    "fraud money missed (allowed)",
)


def summary_rows(report: BacktestReport) -> list[tuple[str, str, str]]:
    """(measure, rules + thresholds, thresholds only) rows of the headline table."""
    return list(
        zip(
            SUMMARY_MEASURES,
            _summary_cells(report.with_rules),
            _summary_cells(report.baseline),
            strict=True,
        )
    )


def render_backtest(report: BacktestReport, *, title: str = "Rule backtest") -> str:
    """The analyst-facing markdown report of a backtest."""
    t = report.thresholds
    lines = [
        f"# {title}",
        "",
        f"- Rules: `{report.source}` (SHA-256 `{report.sha256[:16]}`), {len(report.rules)} rules; "
        f"score thresholds: review ≥ {t.review if t.review is not None else 'off'}, "
        f"block ≥ {t.block if t.block is not None else 'off'}.",
        f"- Payments: {report.payments:,}, of which {report.frauds:,} frauds "
        f"({_pct(report.frauds, report.payments)}) worth "
        f"{format_paise(report.fraud_amount_minor)}.",
        "",
        "## Outcome",
        "",
        "| Measure | Rules + thresholds | Thresholds only |",
        "|---|---:|---:|",
    ]
    lines += [f"| {m} | {a} | {b} |" for m, a, b in summary_rows(report)]
    caught = report.with_rules.blocked.frauds
    lines += [
        "",
        f"Blocking catches {caught:,} of {report.frauds:,} frauds "
        f"({_pct(caught, report.frauds)}) and "
        f"{format_paise(report.money_saved_minor)} of "
        f"{format_paise(report.fraud_amount_minor)} fraud money "
        f"({_pct(report.money_saved_minor, report.fraud_amount_minor)}); "
        f"{report.false_positives:,} legitimate payments "
        f"({format_paise(report.money_wrongly_blocked_minor)}) would be blocked. "
        f"{report.by_score_block:,} blocks and {report.by_score_review:,} reviews come from the "
        "score thresholds, the rest from rules.",
        "",
        "## Rules",
        "",
        "| Rule | Action | Priority | Hits | Frauds hit | Precision | Fraud amount hit "
        "| Deciding |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in report.rules:
        lines.append(
            f"| `{s.name}` | {s.action} | {s.priority} | {s.hits:,} | {s.frauds:,} | "
            f"{s.precision:.3f} | {format_paise(s.fraud_amount_minor)} | {s.decided:,} |"
        )
    lines += [
        "",
        "- **Hits**: payments that match the rule; **Deciding**: decisions that report this rule "
        "as their reason (when several rules hit, the precedence below picks the action and, "
        "among that action's rules, the highest priority, then file order, is the reason).",
        "- Precedence: block rule > allow rule > score ≥ block threshold > review rule > "
        "score ≥ review threshold > allow.",
    ]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        current = os.umask(0)
        os.umask(current)
        tmp.chmod(0o666 & ~current)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def describe_fields(names: Sequence[str] | None = None) -> list[FieldInfo]:
    """The fields a rule may use (all, or the named ones), for ``rizzpay fraud rules fields``."""
    return [FIELDS[n] for n in (names if names is not None else list(FIELDS))]
