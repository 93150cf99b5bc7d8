"""A fingerprint of what a Python file does, not of how it is written. Standard library only.

Comments, blank lines, layout and docstrings change nothing; any other change to the code (a
statement, a name, a constant) changes the fingerprint. The syntax tree is written out field by
field, leaving out empty fields, so that the same code gives the same fingerprint across Python
versions that add optional fields to the tree. A file that does not parse is fingerprinted by its
bytes (its runs then fail with the syntax error).
"""

import ast
import hashlib

_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _is_docstring(statement):
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _canonical(node, out):
    if isinstance(node, ast.AST):
        out.append(type(node).__name__ + "(")
        for name, value in ast.iter_fields(node):
            if value is None or value == []:
                continue
            if name == "body" and isinstance(node, _DOCUMENTED) and value and _is_docstring(value[0]):
                value = value[1:]
            out.append(name + "=")
            _canonical(value, out)
            out.append(",")
        out.append(")")
    elif isinstance(node, list):
        out.append("[")
        for item in node:
            _canonical(item, out)
            out.append(",")
        out.append("]")
    else:
        out.append(repr(node))


def source_fingerprint(source):
    """The fingerprint of Python source text (str or bytes)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        raw = source.encode() if isinstance(source, str) else source
        return "bytes:" + hashlib.sha256(raw).hexdigest()[:16]
    out = []
    _canonical(tree, out)
    return "ast:" + hashlib.sha256("".join(out).encode()).hexdigest()[:16]


def file_fingerprint(path):
    """The fingerprint of a Python file; 'missing' when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return source_fingerprint(handle.read())
    except OSError:
        return "missing"
