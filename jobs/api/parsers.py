"""The API's JSON parser: DRF's, refusing JSON nested deeper than MAX_DEPTH levels before it is
decoded (Python's decoder recurses once per level and fails with RecursionError, a 500, at about a
thousand)."""

import re
from itertools import accumulate

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

MAX_DEPTH = 64

ESCAPE = re.compile(r"\\.", re.DOTALL)
STRING = re.compile(r'"[^"]*"')  # once escapes are gone, a string ends at the next quote
NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def nesting_depth(text):
    """How deeply arrays and objects nest in a JSON text, counted without recursion and in linear
    time: escapes, then strings, then everything but brackets are dropped, and the brackets summed."""
    brackets = NOT_A_BRACKET.sub("", STRING.sub("", ESCAPE.sub("", text)))
    return max(accumulate(map(STEP.__getitem__, brackets)), default=0)


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if nesting_depth(text) > MAX_DEPTH:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels")
        try:
            return json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
