"""A safe arithmetic expression language: a rubric's `total` and OpenAI multi graders' `calculate_output`.

    numbers, names (criteria or grader keys), + - * / ^ (power; ** too), unary minus, parentheses,
    min(a, b, ...), max(a, b, ...), abs, floor, ceil, exp, sqrt, log(x) / log(x, base)

Parsed by a small precedence-climbing parser into closures: nothing here calls eval, compile or getattr,
and nothing but the names the caller allows can be read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping

Node = Callable[[Mapping[str, float]], float]

_TOKEN = re.compile(
    r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(\*\*|[-+*/^(),]))"
)

FUNCTIONS: dict[str, tuple[Callable[..., float], int, int]] = {
    # name: (function, min args, max args)
    "min": (min, 1, 64),
    "max": (max, 1, 64),
    "abs": (abs, 1, 1),
    "floor": (lambda x: float(math.floor(x)), 1, 1),
    "ceil": (lambda x: float(math.ceil(x)), 1, 1),
    "exp": (math.exp, 1, 1),
    "sqrt": (math.sqrt, 1, 1),
    "log": (math.log, 1, 2),
}

# Binding power: (left, right). ^ is right-associative and binds tighter than unary minus (-2^2 = -4).
_BINARY = {"+": (10, 11), "-": (10, 11), "*": (20, 21), "/": (20, 21), "^": (41, 40), "**": (41, 40)}
_UNARY = 30


class ExprError(ValueError):
    """A malformed expression (at load) or one that cannot be computed for a row (division by zero...)."""


class Expression:
    def __init__(self, text: str, names: Iterable[str]) -> None:
        self.text = text
        self.allowed = set(names)
        self.names: set[str] = set()
        self._tokens = self._tokenize(text)
        self._pos = 0
        if not self._tokens:
            raise ExprError("the expression is empty")
        self._root = self._parse(0)
        if self._pos < len(self._tokens):
            raise self._error(f"unexpected '{self._tokens[self._pos][2]}'")

    def __call__(self, values: Mapping[str, float]) -> float:
        try:
            result = float(self._root(values))
        except ZeroDivisionError:
            raise ExprError(f"'{self.text}': division by zero") from None
        except OverflowError:
            raise ExprError(f"'{self.text}': the result is too large") from None
        except ValueError as exc:
            raise ExprError(f"'{self.text}': {exc}") from None
        if not math.isfinite(result):
            raise ExprError(f"'{self.text}' is not finite ({result})")
        return result

    # ---- parsing -------------------------------------------------------------------------------------

    def _tokenize(self, text: str) -> list[tuple[int, str, str]]:
        tokens: list[tuple[int, str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if match is None:
                bad = text[pos:].lstrip()[0]
                raise ExprError(
                    f"'{text}': unexpected character '{bad}' at column {len(text) - len(text[pos:].lstrip()) + 1}"
                )
            kind = "num" if match.group(1) else "name" if match.group(2) else "op"
            tokens.append((match.start(match.lastindex or 0), kind, match.group(match.lastindex or 0)))
            pos = match.end()
        return tokens

    def _error(self, message: str) -> ExprError:
        column = self._tokens[self._pos][0] + 1 if self._pos < len(self._tokens) else len(self.text) + 1
        return ExprError(f"'{self.text}': {message} at column {column}")

    def _peek(self) -> tuple[int, str, str] | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _expect(self, op: str) -> None:
        token = self._peek()
        if token is None or token[2] != op:
            raise self._error(f"expected '{op}'" + (f", found '{token[2]}'" if token else " before the end"))
        self._pos += 1

    def _parse(self, min_power: int) -> Node:
        left = self._prefix()
        while True:
            token = self._peek()
            if token is None or token[1] != "op" or token[2] not in _BINARY:
                return left
            left_power, right_power = _BINARY[token[2]]
            if left_power < min_power:
                return left
            self._pos += 1
            right = self._parse(right_power)
            left = _binary(token[2], left, right)

    def _prefix(self) -> Node:
        token = self._peek()
        if token is None:
            raise self._error("the expression ends too early")
        self._pos += 1
        _, kind, text = token
        if kind == "num":
            number = float(text)
            return lambda v: number
        if kind == "op" and text in "-+" and len(text) == 1:
            operand = self._parse(_UNARY)
            return (lambda v: -operand(v)) if text == "-" else operand
        if kind == "op" and text == "(":
            inner = self._parse(0)
            self._expect(")")
            return inner
        if kind == "name":
            following = self._peek()
            if following is not None and following[2] == "(":
                return self._call(text)
            if text not in self.allowed:
                self._pos -= 1
                known = ", ".join(sorted(self.allowed)) or "none"
                raise self._error(f"unknown name '{text}' (known: {known})")
            self.names.add(text)
            return lambda v: v[text]
        self._pos -= 1
        raise self._error(f"unexpected '{text}'")

    def _call(self, name: str) -> Node:
        if name not in FUNCTIONS:
            self._pos -= 1
            raise self._error(f"unknown function '{name}' (functions: {', '.join(FUNCTIONS)})")
        fn, lo, hi = FUNCTIONS[name]
        self._expect("(")
        args: list[Node] = []
        if (token := self._peek()) is not None and token[2] == ")":
            self._pos += 1
        else:
            while True:
                args.append(self._parse(0))
                token = self._peek()
                if token is not None and token[2] == ",":
                    self._pos += 1
                    continue
                self._expect(")")
                break
        if not lo <= len(args) <= hi:
            wanted = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise ExprError(f"'{self.text}': {name}() takes {wanted} argument(s), got {len(args)}")
        return lambda v: fn(*(a(v) for a in args))


def _binary(op: str, left: Node, right: Node) -> Node:
    if op == "+":
        return lambda v: left(v) + right(v)
    if op == "-":
        return lambda v: left(v) - right(v)
    if op == "*":
        return lambda v: left(v) * right(v)
    if op == "/":
        return lambda v: left(v) / right(v)
    return lambda v: _power(left(v), right(v))


def _power(base: float, exponent: float) -> float:
    result = base**exponent
    if isinstance(result, complex):
        raise ValueError(f"{base:g} ^ {exponent:g} is not a real number")
    return float(result)
