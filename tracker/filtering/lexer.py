"""The filter language's tokens, scanned on demand."""

import re
from dataclasses import dataclass

from tracker.filtering.ast import MAX_FILTER_LENGTH, FilterError

WORD, NAME, IDENT, STRING, NUMBER, OPERATOR, PUNCT, END, STRAY = (
    "word",
    "name",
    "ident",
    "string",
    "number",
    "operator",
    "punct",
    "end",
    "stray",
)
_OPERATOR_SYMBOLS = ("!=", "<=", ">=", "=", "<", ">")
_WORD_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY_PATTERN = re.compile(r"[\w.\-/:]+")
_NUMBER_PATTERN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# Integers up to this many digits stay exact; longer ones become floats (maybe inf), which
# Python's int() would refuse past 4,300 digits anyway.
_MAX_EXACT_DIGITS = 30
INT64 = range(-(2**63), 2**63)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str  # as written, for messages
    position: int
    value: object = None  # STRING: the unescaped text; NUMBER: int or float; IDENT: (entity, key, key position)

    def shown(self, noun: str) -> str:
        if self.kind == END:
            return f"the end of the {noun}"
        text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return text if self.kind == STRING else f"'{text}'"

    def is_keyword(self, *words: str) -> bool:
        return self.kind == WORD and self.text.upper() in words


class Lexer:
    """Tokens on demand, so an error late in the text never hides an earlier one."""

    def __init__(self, text: str, subject: str):
        self.text = text
        self.subject = subject
        self.offset = 0
        self.lookahead: Token | None = None

    def peek(self) -> Token:
        if self.lookahead is None:
            self.lookahead = self._scan()
        return self.lookahead

    def next(self) -> Token:
        token = self.peek()
        self.lookahead = None
        return token

    def _scan(self) -> Token:
        text, start = self.text, self.offset
        while start < len(text) and text[start].isspace():
            start += 1
        if start == len(text):
            self.offset = start
            return Token(END, "", start)
        char = text[start]
        if char in "(),":
            kind, value, end = PUNCT, char, start + 1
        elif symbol := next((s for s in _OPERATOR_SYMBOLS if text.startswith(s, start)), None):
            kind, value, end = OPERATOR, symbol, start + len(symbol)
        elif char in "'\"":
            kind, (value, end) = STRING, self._quoted(start)
        elif number := _NUMBER_PATTERN.match(text, start):
            kind, value, end = NUMBER, _number(number.group()), number.end()
        elif char == "`" or _WORD_PATTERN.match(text, start):
            kind, value, end = self._name(start)
        else:
            kind, value, end = STRAY, char, start + 1
        self.offset = end
        return Token(kind, text[start:end], start, value)

    def _quoted(self, start: int) -> tuple[str, int]:
        text, quote = self.text, self.text[start]
        chars, at = [], start + 1
        while at < len(text):
            char = text[at]
            if char == "\\" and at + 1 < len(text) and text[at + 1] in (quote, "\\"):
                chars.append(text[at + 1])
                at += 2
            elif char == quote and text.startswith(quote, at + 1):
                chars.append(quote)
                at += 2
            elif char == quote:
                return "".join(chars), at + 1
            else:
                chars.append(char)
                at += 1
        raise FilterError(
            position=start,
            expected=f"a closing {quote} to end the string that starts here",
            problem=f"unterminated string: expected a closing {quote} to match the {quote} here",
            subject=self.subject,
        )

    def _name(self, start: int) -> tuple[str, object, int]:
        """A bare word, a `backquoted name`, or `entity.key` with the key bare or quoted."""
        if self.text[start] == "`":
            name, end = self._quoted(start)
            kind = NAME
        else:
            end = _WORD_PATTERN.match(self.text, start).end()
            name, kind = self.text[start:end], WORD
        if not self.text.startswith(".", end):
            return kind, name, end
        key_start = end + 1
        if self.text[key_start : key_start + 1] in ("`", '"', "'"):
            key, end = self._quoted(key_start)
        else:
            bare = _BARE_KEY_PATTERN.match(self.text, key_start)
            key, end = (bare.group(), bare.end()) if bare else ("", key_start)
        return IDENT, (name, key, key_start), end


def _number(text: str) -> int | float:
    digits = text.lstrip("+-")
    if digits.isdigit() and len(digits) <= _MAX_EXACT_DIGITS:
        return int(text)
    return float(text)  # never raises for this syntax; too large gives inf


def check_text(text, subject: str) -> str:
    if text is None:
        return ""
    if not isinstance(text, str):
        raise FilterError(position=0, expected="text", found=type(text).__name__, subject=subject)
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(
            position=MAX_FILTER_LENGTH,
            expected=f"at most {MAX_FILTER_LENGTH} characters",
            problem=f"the text is {len(text)} characters long; the limit is {MAX_FILTER_LENGTH}",
            subject=subject,
        )
    for position, char in enumerate(text):
        # Neither database can take these: PostgreSQL refuses NUL, and a lone surrogate
        # cannot be encoded to send at all.
        if char == "\x00" or "\ud800" <= char <= "\udfff":
            raise FilterError(
                position=position,
                expected="text without NUL or unpaired surrogate characters",
                found=repr(char),
                subject=subject,
            )
    return text
