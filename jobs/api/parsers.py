"""The API's JSON parser: DRF's, refusing JSON nested deeper than MAX_DEPTH levels before it is
decoded (Python's decoder recurses once per level and fails with RecursionError, a 500, at about a
thousand)."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from jobsite.jsonnesting import MAX_DEPTH, nesting_depth


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
