"""How deeply a JSON text nests, counted before it is decoded: Python's decoder recurses once per
level and fails with RecursionError at about a thousand. Used by the API's parser and by the
inspection of uploaded JSON files."""

import re
from itertools import accumulate

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
