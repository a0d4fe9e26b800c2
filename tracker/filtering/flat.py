"""What the flat filters share (experiments, logged models, registered models and versions):
there MLflow's filter is `column op value` comparisons joined by AND. Each grammar keeps its own
token pattern, columns and words, and reads them with these, so an error reads the same in all."""

import re

from tracker.errors import InvalidParameterValue


def filter_error(subject: str, text: str, position: int, expected: str) -> InvalidParameterValue:
    """A 400 that names the position in `text` and what was expected there."""
    found = repr(text[position : position + 20]) if position < len(text) else "the end of the filter"
    return InvalidParameterValue(
        f"Invalid {subject} filter at position {position}: expected {expected} but found {found}"
    )


def tokenize(text: str, pattern: re.Pattern, subject: str) -> list[tuple[str, str, int]]:
    """(kind, text, position) for each token of `pattern` (its named group is the kind); white
    space between tokens is skipped and any other character is an error."""
    tokens, at = [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return tokens
        match = pattern.match(text, at)
        if not match:
            raise filter_error(subject, text, at, "a column, an operator or a value")
        tokens.append((match.lastgroup, match.group(match.lastgroup), at))
        at = match.end()


def split_column(token: str, tag_prefixes: tuple[str, ...], attribute_prefixes: tuple[str, ...]) -> tuple[str, str]:
    """("tag", key) or ("attribute", name) for a column token; a bare name is an attribute."""
    lowered = token.lower()
    for prefix in tag_prefixes:
        if lowered.startswith(prefix):
            return "tag", token[len(prefix) :].strip("`")
    for prefix in attribute_prefixes:
        if lowered.startswith(prefix):
            return "attribute", token[len(prefix) :].strip("`")
    return "attribute", token.strip("`")
