"""Find the user's class files and check, without importing them, that they define the classes named.

Importing a class file would import torch; a static scan of its syntax tree keeps ini validation instant.
"""

import ast
import functools
import hashlib
import os
import sys

from mosaic.errors import ConfigError, MosaicError, UserClassError

_BLOCK_STATEMENTS = (ast.If, ast.Try, getattr(ast, "TryStar", ast.Try), ast.With)


def find_class(path, class_name):
    """True if the python file defines or imports `class_name` at top level (static check, no import)."""
    names, star_import = _top_level_names(path)
    return star_import or class_name in names


def syntax_tree(path):
    """The file's parsed syntax tree (ast.Module), cached per file version; UserClassError if unreadable."""
    try:
        stat = os.stat(path)
    except OSError as error:
        raise UserClassError(path, f"cannot read: {error.strerror}") from None
    return _parse(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _parse(path, mtime_ns, size):
    try:
        with open(path, "rb") as handle:
            return ast.parse(handle.read(), filename=path)
    except SyntaxError as error:
        raise UserClassError(path, f"line {error.lineno}: syntax error: {error.msg}") from None
    except (OSError, ValueError) as error:
        raise UserClassError(path, f"cannot parse: {error}") from None


def _top_level_names(path):
    return _names_in_tree(syntax_tree(path))


@functools.lru_cache(maxsize=256)
def _names_in_tree(tree):
    """(names bound at top level, has a star import)."""
    names, star = set(), False
    for node in _top_level_statements(tree.body):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(_target_names(target))
        elif isinstance(node, ast.AnnAssign):
            names.update(_target_names(node.target))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                star = star or alias.name == "*"
                names.add(alias.asname or alias.name.split(".")[0])
    return frozenset(names), star


def _top_level_statements(body):
    """Statements at module level, looking inside if/try/with blocks but not into functions or classes."""
    for node in body:
        yield node
        if isinstance(node, _BLOCK_STATEMENTS):
            for block in ("body", "orelse", "finalbody"):
                yield from _top_level_statements(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                yield from _top_level_statements(handler.body)


def _target_names(target):
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _target_names(element)]
    return []


def resolve_file(written, ini_dir, place):
    """Absolute path of a file named in the ini: the ini's folder first, then the working directory."""
    written = os.path.expanduser(written)
    if os.path.isabs(written):
        if os.path.isfile(written):
            return os.path.realpath(written)
        raise ConfigError(place, f"file not found: {written}")
    beside_ini = os.path.normpath(os.path.join(ini_dir, written))
    if os.path.isfile(beside_ini):
        return os.path.realpath(beside_ini)
    # The original resolved class files from the current directory (`./mosaic/share/mlp.py` run from the
    # project's root): still found there, but said, since a same-named file there may not be the one meant.
    in_cwd = os.path.abspath(written)
    if os.path.isfile(in_cwd):
        _warn_once(f"mosaic: warning: {written} is not in the ini's folder {ini_dir}; using {in_cwd}"
                   " from the current directory")
        return os.path.realpath(in_cwd)
    tried = list(dict.fromkeys([beside_ini, in_cwd]))
    raise ConfigError(place, f"file not found: tried {' and '.join(tried)}")


_WARNED = "MOSAIC_WARNED"  # digests of the warnings given, inherited by Snakemake and its jobs


def _warn_once(line):
    """One stderr line per message for a command and the processes it starts (mosaic_run, Snakemake and
    every job read the ini)."""
    digest = hashlib.sha1(line.encode()).hexdigest()[:12]
    given = [d for d in os.environ.get(_WARNED, "").split(",") if d]
    if digest not in given:
        os.environ[_WARNED] = ",".join([*given, digest])
        print(line, file=sys.stderr, flush=True)


def defined_classes(path):
    """The classes a file defines at top level (class statements), in file order."""
    names = (node.name for node in _top_level_statements(syntax_tree(path).body) if isinstance(node, ast.ClassDef))
    return list(dict.fromkeys(names))


def check_class(path, class_name, place, shown):
    """A UserClassError at `place` unless the file defines `class_name`; the message names the file as `shown`
    (as the ini writes it) and the classes it defines (those not starting with '_', if any)."""
    try:
        found = find_class(path, class_name)
    except MosaicError as error:
        raise UserClassError(place, str(error), class_name) from None
    if not found:
        classes = defined_classes(path)
        listed = [name for name in classes if not name.startswith("_")] or classes
        defines = f"it defines: {', '.join(listed)}" if listed else "it defines no class"
        raise UserClassError(place, f"{os.path.normpath(shown)} defines no class {class_name!r}; {defines}",
                             class_name)
