"""Band math: an expression over named rasters, checked before it is evaluated, and evaluated with
numexpr over arrays. Knows nothing of Django.

The expression is parsed with Python's `ast` (which parses, never runs) and every node is checked
against an allow-list: numbers, the input names, arithmetic, comparisons, & | ~, and the functions
of FUNCTIONS. Only an expression that passes is handed to numexpr, which compiles it to its own
virtual machine. Integer constants become floats first, so that a constant such as 9**9**9
overflows at once instead of being computed digit by digit, and numexpr compiles the expression
over sample arrays before any job is created, so an expression it cannot evaluate (a function
given the wrong number of arguments, & on numbers) is refused at submit. Where a result is not finite (a division by zero, the log of a negative number),
where any input is nodata, and where an integer output cannot hold the value, the output is
nodata; integer outputs are rounded to the nearest integer.
"""

import ast
import keyword
import os

# The workers run one tile per process; numexpr's own threads would compete with the other worker.
os.environ.setdefault("NUMEXPR_MAX_THREADS", "1")
import numexpr  # noqa: E402  (reads NUMEXPR_MAX_THREADS when imported)
import numpy as np  # noqa: E402

FUNCTIONS = ("abs", "sqrt", "exp", "expm1", "log", "log10", "log1p", "sin", "cos", "tan", "arcsin", "arccos",
             "arctan", "arctan2", "sinh", "cosh", "tanh", "floor", "ceil", "where", "minimum", "maximum", "fmod")
OUTPUT_TYPES = {"Byte": np.uint8, "UInt16": np.uint16, "Int16": np.int16, "UInt32": np.uint32, "Int32": np.int32,
                "Float32": np.float32, "Float64": np.float64}
MAX_LENGTH = 1000
MAX_NODES = 300

_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod, ast.BitAnd, ast.BitOr, ast.USub, ast.UAdd,
              ast.Invert, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.Name, ast.Load, ast.Constant, *_OPERATORS)


class ExpressionError(ValueError):
    """The expression is not one that calc evaluates; the message says why."""


def name_problem(name):
    """Why `name` cannot name an input of an expression, or None."""
    if name in numexpr.expressions.functions or name in FUNCTIONS:
        return "is a function name"
    if keyword.iskeyword(name) or "__" in name:
        return "is a Python keyword or holds a double underscore"
    return None


def check_expression(expression, names):
    """The input names `expression` uses; ExpressionError if it is not plain arithmetic over
    `names` with the allowed functions."""
    if not isinstance(expression, str) or not expression.strip():
        raise ExpressionError("must be a non-empty expression, such as (nir - red) / (nir + red)")
    if len(expression) > MAX_LENGTH:
        raise ExpressionError(f"is {len(expression)} characters long; at most {MAX_LENGTH}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL character
        where = f" at character {exc.offset}" if getattr(exc, "offset", None) else ""
        raise ExpressionError(f"is not an expression: {getattr(exc, 'msg', exc)}{where}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ExpressionError(f"has {len(nodes)} parts; at most {MAX_NODES}")
    used = set()
    for node in nodes:
        if not isinstance(node, _NODES):
            raise ExpressionError(f"may not use {_describe(node)}; only numbers, the input names, + - * / ** %, "
                                  "comparisons, & | ~ and the functions " + ", ".join(FUNCTIONS))
        if isinstance(node, ast.Compare) and len(node.ops) > 1:
            raise ExpressionError("may not chain comparisons (a < b < c); write (a < b) & (b < c)")
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool) or not isinstance(node.value, (int, float))):
            raise ExpressionError(f"may not use the constant {node.value!r}; only numbers")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise ExpressionError(f"may not call {_describe(node.func)}; the functions are {', '.join(FUNCTIONS)}")
            if node.keywords:
                raise ExpressionError(f"{node.func.id}() takes no keyword arguments")
        elif isinstance(node, ast.Name) and not _is_function_name(node, nodes):
            if node.id not in names:
                raise ExpressionError(f"uses {node.id!r}, which is not an input; the inputs are {', '.join(sorted(names))}")
            used.add(node.id)
    _compile(tree, names)
    return used


class _FloatConstants(ast.NodeTransformer):
    def visit_Constant(self, node):
        return ast.copy_location(ast.Constant(float(node.value)), node)


def numexpr_source(expression):
    """The checked expression as numexpr is given it: every constant a float."""
    return ast.unparse(_FloatConstants().visit(ast.parse(expression.strip(), mode="eval")))


def _compile(tree, names):
    source = ast.unparse(_FloatConstants().visit(tree))
    samples = {name: np.zeros(1) for name in names}
    try:
        problem = numexpr.validate(source, local_dict=samples, global_dict={})
    except Exception as exc:  # validate returns most problems and raises the rest
        problem = exc
    if problem is not None:
        message = str(problem) or type(problem).__name__
        if isinstance(problem, NotImplementedError):
            message = (f"numexpr has no such operation ({message}); & | ~ combine comparisons, and each function "
                       "takes its own number of arguments")
        elif isinstance(problem, OverflowError):
            message = "a constant part of it is too large"
        raise ExpressionError(f"cannot be evaluated: {message}")


def _is_function_name(name, nodes):
    return any(isinstance(node, ast.Call) and node.func is name for node in nodes)


def _describe(node):
    if isinstance(node, ast.Name):
        return f"{node.id}()"
    if isinstance(node, ast.Attribute):
        return f"attributes (.{node.attr})"
    return {ast.Subscript: "subscripts ([...])", ast.Lambda: "lambda", ast.BoolOp: "and/or (use & and |)",
            ast.IfExp: "if/else (use where())", ast.Not: "not (use ~)"}.get(type(node), type(node).__name__)


def type_nodata(output_type):
    """The nodata value of an output type when the job gives none: -9999 for floats, the smallest
    value of a signed integer type, the largest of an unsigned one."""
    dtype = np.dtype(OUTPUT_TYPES[output_type])
    if dtype.kind == "f":
        return -9999.0
    info = np.iinfo(dtype)
    return float(info.min if dtype.kind == "i" else info.max)


def evaluate(expression, arrays, valid, output_type, nodata):
    """The expression (checked by check_expression) over `arrays` ({name: float64 array}, all of one
    shape), as an array of `output_type`: nodata where `valid` is false, where the result is not
    finite, and where an integer type cannot hold it."""
    result = numexpr.evaluate(numexpr_source(expression), local_dict=arrays, global_dict={})
    result = np.broadcast_to(np.asarray(result, dtype=np.float64), valid.shape)
    dtype = np.dtype(OUTPUT_TYPES[output_type])
    keep = valid & np.isfinite(result)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        result = np.rint(result)
        keep &= (result >= info.min) & (result <= info.max)
    out = np.full(valid.shape, nodata, dtype=dtype)
    out[keep] = result[keep].astype(dtype)
    return out
