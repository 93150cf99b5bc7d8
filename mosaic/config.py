"""Read a Mosaic ini file: parse, validate and expand it into the ordered list of training runs.

Standard library only, so that importing it stays fast (no torch, numpy or snakemake here).
"""

import ast
import configparser
import functools
import hashlib
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field

from mosaic.errors import MosaicError, where

RESERVED_KEYS = ("type", "class", "path_to_class", "key")
DEFAULT_KEY_TEMPLATE = "{class}"
MAX_RANGE_VALUES = 1_000_000  # a typo like {0-100000000} must fail, not exhaust memory

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_UNSIGNED = r"(?:\d+(?:\.\d+)?)"
_SIGNED = r"(?:[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?)"
_STEP = r"(?:\s*:\s*(?P<step>\S+))?"
_DASH_RANGE = re.compile(rf"(?P<a>{_UNSIGNED})\s*-\s*(?P<b>{_UNSIGNED}){_STEP}")
_DOT_RANGE = re.compile(rf"(?P<a>{_SIGNED})\s*\.\.\s*(?P<b>{_SIGNED}){_STEP}")
_LOG_STEP = re.compile(r"log(\d+)")
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)B?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_BLOCK_STATEMENTS = (ast.If, ast.Try, getattr(ast, "TryStar", ast.Try), ast.With)
_NO_DEFAULT_SECTION = "\x00mosaic: no default section\x00"


# ---------------------------------------------------------------------------------------------------------
# Public data model


def format_value(value):
    """Render a typed value the way display() and key templates show it: 0.8, 1e-05, True, relu."""
    return str(value)


@dataclass(frozen=True)
class Module:
    """One variant of one class section: a class and its parameter values."""

    section: str
    type: str
    class_name: str
    path: str
    path_in_ini: str
    key_template: str
    key: str
    params: tuple

    def display(self):
        """Class name and parameter values in ini order: 'mlp_funnel(4,3)'."""
        return f"{self.class_name}({','.join(format_value(v) for _, v in self.params)})"

    def param_dict(self):
        """Parameters as a dict, name -> typed value."""
        return dict(self.params)


@dataclass(frozen=True)
class Run:
    """One training run: a pipeline of modules and a replicate index."""

    run_id: int
    run_hash: str
    replicate: int
    seed: int
    modules: tuple
    n_data: int
    pipeline: str
    dataset_key: str
    model_key: str

    @property
    def data_modules(self):
        return self.modules[: self.n_data]

    @property
    def model_modules(self):
        return self.modules[self.n_data :]


@dataclass(frozen=True)
class Process:
    """The [PROCESS] section."""

    lr: float
    epochs: int
    data_scheme: tuple
    pipeline_scheme: tuple
    run_files_path: str
    loss_function: str = "MSELoss"
    class_loss_function: str | None = None
    path_to_class_loss_function: str | None = None
    optimizer: str = "Adam"
    seed: int = 0
    checkpoint_every: int | None = None  # None: every tenth of the epochs; 0: never
    extra: tuple = ()


@dataclass(frozen=True)
class Monitor:
    """The [MONITOR] section."""

    need_gpu: bool
    gpu_available: tuple | None
    nb_processus: int | None
    multiplicity: int
    cache_database_path: str
    cache_size: int
    extra: tuple = ()


@dataclass(frozen=True)
class Experiment:
    """A loaded ini file: its settings and its runs in order."""

    ini_path: str
    process: Process
    monitor: Monitor
    runs: tuple
    _by_hash: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_by_hash", {run.run_hash: run for run in self.runs})

    def run_by_hash(self, run_hash):
        """The run with this content id; KeyError if there is none."""
        return self._by_hash[run_hash]

    def class_files(self, run):
        """Absolute paths of the class files a run depends on (loss class included), without duplicates."""
        paths = [module.path for module in run.modules]
        if self.process.path_to_class_loss_function:
            paths.append(self.process.path_to_class_loss_function)
        return list(dict.fromkeys(paths))


# ---------------------------------------------------------------------------------------------------------
# Value grammar


def parse_values(text, where):
    """Parse a parameter value into its list of typed values; errors start with `where`."""
    values = []
    for item, quoted in _split_items(text, where):
        if quoted:
            values.append(item)
        elif "{" in item or "}" in item:
            values.extend(_parse_range(item, where))
        else:
            values.append(_type_item(item))
    return _dedupe(values)


def _split_items(text, where):
    """Split on top-level commas; return [(item, quoted)]. A quote only opens at the start of an item."""
    items, i, size = [], 0, len(text)
    while True:
        start = i
        while start < size and text[start].isspace():
            start += 1
        if start < size and text[start] in "\"'":
            i = _quoted_item_end(text, start, where)
            items.append((text[start + 1 : i - 1], True))
            while i < size and text[i].isspace():
                i += 1
            if i < size and text[i] != ",":
                raise MosaicError(f"{where}: text after a closing quote in {text!r}")
        else:
            i = _plain_item_end(text, start, where)
            item = text[start:i].strip()
            if not item:
                raise MosaicError(f"{where}: empty item in {text!r} (write \"\" for an empty string)")
            items.append((item, False))
        if i >= size:
            return items
        i += 1  # the comma


def _quoted_item_end(text, start, where):
    end = text.find(text[start], start + 1)
    if end < 0:
        raise MosaicError(f"{where}: unterminated quote in {text!r}")
    return end + 1


def _plain_item_end(text, start, where):
    """Index of the comma (or end of text) closing an unquoted item; commas inside {...} do not split."""
    depth, i = 0, start
    while i < len(text) and not (text[i] == "," and depth == 0):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth < 0:
                break
        i += 1
    if depth:
        raise MosaicError(f"{where}: unbalanced braces in {text!r}")
    return i


def _type_item(item):
    """Type one unquoted item: int, then float (not nan/inf), then True/False, else the string."""
    if _INT.fullmatch(item):
        return int(item)
    if _FLOAT.fullmatch(item):
        return float(item)
    if item in ("True", "False"):
        return item == "True"
    return item


def _typed_scalar(text):
    """Type a whole value as one item; matching quotes make it a literal string."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return _type_item(text)


def _dedupe(values):
    """Drop repeated values, keeping the first; 1, 1.0 and True stay distinct."""
    seen, kept = set(), []
    for value in values:
        marker = (type(value), value)
        if marker not in seen:
            seen.add(marker)
            kept.append(value)
    return kept


def _parse_range(item, where):
    """Expand '{a-b}', '{a-b:s}', '{a..b}', '{a..b:s}' or '{a..b:logN}'."""
    if not (item.startswith("{") and item.endswith("}") and item.count("{") == 1):
        raise MosaicError(f"{where}: malformed range {item!r} (a range must be a whole item, like {{2-5}})")
    body = item[1:-1].strip()
    match = _DOT_RANGE.fullmatch(body) if ".." in body else _DASH_RANGE.fullmatch(body)
    if not match:
        hint = " (use {a..b} for negative or exponent bounds)" if ".." not in body else ""
        raise MosaicError(f"{where}: malformed range {item!r}{hint}")
    start, stop, step = _number(match["a"]), _number(match["b"]), match["step"]
    if start > stop:
        raise MosaicError(f"{where}: empty range {item!r} (start is above end)")
    if step is None:
        if not (isinstance(start, int) and isinstance(stop, int)):
            raise MosaicError(f"{where}: range {item!r} has non-integer bounds; give a step, like {{0.1-0.5:0.1}}")
        return _stepped(start, stop, 1, item, where)
    log = _LOG_STEP.fullmatch(step)
    if log:
        return _log_spaced(start, stop, int(log[1]), item, where)
    if not _FLOAT.fullmatch(step):
        raise MosaicError(f"{where}: malformed step {step!r} in range {item!r}")
    step = _number(step)
    if step <= 0:
        raise MosaicError(f"{where}: step must be positive in range {item!r}")
    return _stepped(start, stop, step, item, where)


def _number(text):
    return int(text) if _INT.fullmatch(text) else float(text)


def _round(value):
    """Round to 12 significant digits, so 0.1 + 0.2 shows as 0.3."""
    return float(f"{value:.12g}")


def _stepped(start, stop, step, item, where):
    span = (stop - start) / step
    count = math.floor(span + 1e-9 * max(1.0, abs(span))) + 1
    if count > MAX_RANGE_VALUES:
        raise MosaicError(f"{where}: range {item!r} gives {count} values (at most {MAX_RANGE_VALUES})")
    if all(isinstance(x, int) for x in (start, stop, step)):
        return list(range(start, stop + 1, step))
    return [_round(start + i * step) for i in range(count)]


def _log_spaced(start, stop, count, item, where):
    if start <= 0:
        raise MosaicError(f"{where}: log range {item!r} needs positive bounds")
    if not 2 <= count <= MAX_RANGE_VALUES:
        raise MosaicError(f"{where}: log range {item!r} needs between 2 and {MAX_RANGE_VALUES} values")
    low, high = math.log(start), math.log(stop)
    inner = [_round(math.exp(low + (high - low) * i / (count - 1))) for i in range(1, count - 1)]
    return [float(start), *inner, float(stop)]


# ---------------------------------------------------------------------------------------------------------
# Class files


def find_class(path, class_name):
    """True if the python file defines or imports `class_name` at top level (static check, no import)."""
    names, star_import = _top_level_names(path)
    return star_import or class_name in names


def _top_level_names(path):
    try:
        stat = os.stat(path)
    except OSError as error:
        raise MosaicError(f"{path}: cannot read: {error.strerror}") from None
    return _names_in_file(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _names_in_file(path, mtime_ns, size):
    """(names bound at top level, has a star import); cached per file version."""
    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read(), filename=path)
    except SyntaxError as error:
        raise MosaicError(f"{path}: line {error.lineno}: syntax error: {error.msg}") from None
    except (OSError, ValueError) as error:
        raise MosaicError(f"{path}: cannot parse: {error}") from None
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


def _resolve_file(written, ini_dir, place):
    """Absolute path of a file named in the ini: the ini's folder first, then the working directory."""
    written = os.path.expanduser(written)
    if os.path.isabs(written):
        if os.path.isfile(written):
            return os.path.realpath(written)
        raise MosaicError(f"{place}: file not found: {written}")
    tried = list(dict.fromkeys([os.path.normpath(os.path.join(ini_dir, written)), os.path.abspath(written)]))
    for candidate in tried:
        if os.path.isfile(candidate):
            return os.path.realpath(candidate)
    raise MosaicError(f"{place}: file not found: tried {' and '.join(tried)}")


def _check_class(path, class_name, place):
    try:
        found = find_class(path, class_name)
    except MosaicError as error:
        raise MosaicError(f"{place}: {error}") from None
    if not found:
        raise MosaicError(f"{place}: no class {class_name!r} in {path}")


# ---------------------------------------------------------------------------------------------------------
# Reading the ini file


def _read_ini(ini_path):
    parser = configparser.ConfigParser(
        interpolation=None,
        default_section=_NO_DEFAULT_SECTION,
        strict=True,
        comment_prefixes=("#", ";"),
        inline_comment_prefixes=None,
    )
    parser.optionxform = str
    try:
        with open(ini_path, encoding="utf-8") as handle:
            parser.read_file(handle, source=ini_path)
    except FileNotFoundError:
        raise MosaicError(f"{ini_path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise MosaicError(f"{ini_path}: cannot read: {error}") from None
    except configparser.Error as error:
        raise MosaicError(_ini_error_message(ini_path, error)) from None
    return parser


def _ini_error_message(ini_path, error):
    """One line for a configparser error, with the line number when there is one."""
    if isinstance(error, configparser.DuplicateOptionError):
        return f"{where(ini_path, error.section, error.option)}: duplicate key (line {error.lineno})"
    if isinstance(error, configparser.DuplicateSectionError):
        return f"{where(ini_path, error.section)}: duplicate section (line {error.lineno})"
    if isinstance(error, configparser.MissingSectionHeaderError):
        return f"{ini_path}: line {error.lineno}: text before the first [section] header: {error.line!r}"
    if isinstance(error, configparser.ParsingError):
        lineno, line = error.errors[0]
        return f"{ini_path}: line {lineno}: cannot parse {line!r} (expected 'key = value')"
    return f"{ini_path}: {' '.join(str(error).split())}"


class _Section:
    """Typed access to one ini section, with errors naming file, section and key."""

    def __init__(self, ini_path, parser, name):
        self.ini_path = ini_path
        self.name = name
        self.items = dict(parser.items(name)) if parser.has_section(name) else {}
        self.used = set()

    def place(self, key=None):
        return where(self.ini_path, self.name, key)

    def fail(self, key, message):
        raise MosaicError(f"{self.place(key)}: {message}")

    def text(self, key, default=None, required=False):
        self.used.add(key)
        if key not in self.items:
            if required:
                self.fail(key, "required key is missing")
            return default
        value = self.items[key].strip()
        if not value:
            self.fail(key, "empty value")
        return value

    def integer(self, key, default=None, minimum=None, required=False):
        value = self.text(key, None, required)
        if value is None:
            return default
        if not _INT.fullmatch(value):
            self.fail(key, f"not an integer: {value!r}")
        number = int(value)
        if minimum is not None and number < minimum:
            self.fail(key, f"must be >= {minimum}, got {number}")
        return number

    def number(self, key, required=False):
        value = self.text(key, None, required)
        if not _FLOAT.fullmatch(value):
            self.fail(key, f"not a number: {value!r}")
        return float(value)

    def boolean(self, key, default):
        value = self.text(key)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        self.fail(key, f"not a boolean (True/False): {value!r}")

    def identifier(self, key, default=None):
        value = self.text(key, default)
        if value is not None and not value.isidentifier():
            self.fail(key, f"not a valid name: {value!r}")
        return value

    def name_list(self, key, required=False):
        """Comma-separated names; None when absent and not required."""
        value = self.text(key, None, required)
        if value is None:
            return None
        names = [name.strip() for name in value.split(",")]
        if not all(names):
            self.fail(key, f"empty item in {value!r}")
        return names

    def extra(self):
        """Every key not read so far, typed, in ini order."""
        return tuple((key, _typed_scalar(value)) for key, value in self.items.items() if key not in self.used)


def _local_path(written, ini_dir):
    return os.path.normpath(os.path.join(ini_dir, os.path.expanduser(written)))


def _parse_process(section, ini_dir):
    lr = section.number("lr", required=True)
    if not math.isfinite(lr) or lr < 0:
        section.fail("lr", f"must be a finite number >= 0, got {lr}")
    data_scheme = section.name_list("data_scheme", required=True)
    pipeline_scheme = section.name_list("pipeline_scheme", required=True)
    _check_schemes(section, data_scheme, pipeline_scheme)
    loss_class = section.identifier("class_loss_function")
    loss_path = section.text("path_to_class_loss_function")
    if (loss_class is None) != (loss_path is None):
        missing = "path_to_class_loss_function" if loss_path is None else "class_loss_function"
        section.fail(missing, "class_loss_function and path_to_class_loss_function go together; this one is missing")
    loss_file = None
    if loss_path is not None:
        loss_file = _resolve_file(loss_path, ini_dir, section.place("path_to_class_loss_function"))
        _check_class(loss_file, loss_class, section.place("class_loss_function"))
    process = Process(
        lr=lr,
        epochs=section.integer("epochs", minimum=1, required=True),
        data_scheme=tuple(data_scheme),
        pipeline_scheme=tuple(pipeline_scheme),
        run_files_path=_local_path(section.text("run_files_path", ".runs"), ini_dir),
        loss_function=section.identifier("loss_function", "MSELoss"),
        class_loss_function=loss_class,
        path_to_class_loss_function=loss_file,
        optimizer=section.identifier("optimizer", "Adam"),
        seed=section.integer("seed", 0),
        checkpoint_every=section.integer("checkpoint_every", None, minimum=0),
        extra=section.extra(),
    )
    loss_in_ini = os.path.normpath(loss_path) if loss_path is not None else None
    return process, loss_in_ini


def _check_schemes(section, data_scheme, pipeline_scheme):
    seen = {}
    for key, scheme in (("data_scheme", data_scheme), ("pipeline_scheme", pipeline_scheme)):
        for type_name in scheme:
            if type_name in seen:
                section.fail(key, f"type {type_name!r} is listed twice (also in {seen[type_name]})")
            seen[type_name] = key


def _parse_monitor(section, ini_dir):
    return Monitor(
        need_gpu=section.boolean("need_gpu", False),
        gpu_available=_gpu_list(section),
        nb_processus=_optional_count(section, "nb_processus"),
        multiplicity=section.integer("multiplicity", 1, minimum=1),
        cache_database_path=_local_path(section.text("cache_database_path", "./cache.db"), ini_dir),
        cache_size=_cache_size(section),
        extra=section.extra(),
    )


def _gpu_list(section):
    """'cuda:0, cuda:1' -> ('cuda:0', 'cuda:1'); None when absent or 'None'. Spaces also separate."""
    if section.items.get("gpu_available", "").strip() == "None":
        section.used.add("gpu_available")
        return None
    names = section.name_list("gpu_available")
    return None if names is None else tuple(part for name in names for part in name.split())


def _optional_count(section, key):
    if section.items.get(key, "").strip() == "None":
        section.used.add(key)
        return None
    return section.integer(key, None, minimum=1)


def _cache_size(section):
    value = section.text("cache_size", "1G")
    match = _SIZE.fullmatch(value)
    if not match or (not match[2] and not _INT.fullmatch(match[1])):
        section.fail("cache_size", f"not a size like 500K, 1M, 1.5G or a number of bytes: {value!r}")
    size = round(float(match[1]) * _SIZE_UNITS[match[2].upper()])
    if size <= 0:
        section.fail("cache_size", f"must be positive: {value!r}")
    return size


# ---------------------------------------------------------------------------------------------------------
# Class sections and expansion


def _parse_class_section(section, ini_dir, scheme_types):
    """Expand one class section into its Module variants, in grid order (first key outermost)."""
    type_name = section.text("type", required=True)
    if type_name not in scheme_types:
        section.fail("type", f"type {type_name!r} is in neither data_scheme nor pipeline_scheme")
    section.text("class", required=True)
    path_written = section.text("path_to_class", required=True)
    path = _resolve_file(path_written, ini_dir, section.place("path_to_class"))
    template = section.text("key", DEFAULT_KEY_TEMPLATE)

    grid_keys = [key for key in section.items if key == "class" or key not in RESERVED_KEYS]
    grid = [parse_values(section.items[key], section.place(key)) for key in grid_keys]
    class_index = grid_keys.index("class")
    for class_name in grid[class_index]:
        if not isinstance(class_name, str) or not class_name.isidentifier():
            section.fail("class", f"not a valid class name: {class_name!r}")
        _check_class(path, class_name, section.place("class"))
    key_parts = _parse_key_template(template, section, grid_keys)

    modules = []
    for combination in itertools.product(*grid):
        params = tuple((k, v) for k, v in zip(grid_keys, combination) if k not in RESERVED_KEYS)
        class_name = combination[class_index]
        fields = {"section": section.name, "type": type_name, "class": class_name, **dict(params)}
        modules.append(
            Module(
                section=section.name,
                type=type_name,
                class_name=class_name,
                path=path,
                path_in_ini=os.path.normpath(path_written),
                key_template=template,
                key=_render_key(key_parts, fields),
                params=params,
            )
        )
    return type_name, modules


def _parse_key_template(template, section, param_names):
    """Split a key template into literal text and {name} placeholders: [(is_placeholder, text), ...]."""
    known = {"class", "type", "section", *param_names}
    parts = []
    for piece in re.split(r"(\{[^{}]*\})", template):
        if piece.startswith("{") and piece.endswith("}") and len(piece) > 1:
            name = piece[1:-1].strip()
            if name not in known:
                known_names = ", ".join(sorted(known))
                section.fail("key", f"unknown placeholder {piece!r} in {template!r} (known: {known_names})")
            parts.append((True, name))
        elif "{" in piece or "}" in piece:
            section.fail("key", f"unbalanced braces in {template!r}")
        elif piece:
            parts.append((False, piece))
    return parts


def _render_key(parts, fields):
    return "".join(format_value(fields[text]) if is_placeholder else text for is_placeholder, text in parts)


def _compact_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _module_json(module):
    """A module's part of the hashed payload: [type, class, path as written, [[name, value], ...]]."""
    return _compact_json([module.type, module.class_name, module.path_in_ini, [list(p) for p in module.params]])


def _process_json(process, loss_path_in_ini):
    """The PROCESS values that change what a run computes (not epochs, paths or extra keys)."""
    return _compact_json(
        {
            "lr": process.lr,
            "loss_function": process.loss_function,
            "class_loss_function": process.class_loss_function,
            "path_to_class_loss_function": loss_path_in_ini,
            "optimizer": process.optimizer,
            "seed": process.seed,
        }
    )


def _pipeline_hash(module_jsons, process_json):
    """sha256 hex digest of _compact_json({"modules": [...], "process": {...}}), joined from serialized parts."""
    text = '{"modules":[' + ",".join(module_jsons) + '],"process":' + process_json + "}"
    return hashlib.sha256(text.encode()).hexdigest()


def _check_distinct_variants(variants, module_json, ini_path):
    """Two identical variants of one type would give runs with the same content id."""
    seen = {}
    for module in variants:
        other = seen.setdefault(module_json[id(module)], module)
        if other is not module:
            raise MosaicError(
                f"{ini_path}: [{other.section}] and [{module.section}] define the same variant "
                f"{module.display()}; their runs would collide"
            )


def _expand_runs(variants_by_type, module_json, process, monitor, process_json):
    """Cartesian product of the variants, first scheme type outermost, each repeated multiplicity times."""
    scheme = process.data_scheme + process.pipeline_scheme
    n_data = len(process.data_scheme)
    displays = {id(m): m.display() for variants in variants_by_type.values() for m in variants}
    runs = []
    for modules in itertools.product(*(variants_by_type[type_name] for type_name in scheme)):
        digest = _pipeline_hash([module_json[id(m)] for m in modules], process_json)
        pipeline = " | ".join(displays[id(m)] for m in modules)
        dataset_key = " | ".join(m.key for m in modules[:n_data])
        model_key = " | ".join(m.key for m in modules[n_data:])
        for replicate in range(1, monitor.multiplicity + 1):
            run_hash = hashlib.sha256(f"{digest}:{replicate}".encode()).hexdigest()[:16]
            seed_hex = hashlib.sha256(f"{process.seed}:{digest}:{replicate}".encode()).hexdigest()[:8]
            runs.append(
                Run(
                    run_id=len(runs) + 1,
                    run_hash=run_hash,
                    replicate=replicate,
                    seed=int(seed_hex, 16) % 2**31,
                    modules=modules,
                    n_data=n_data,
                    pipeline=pipeline,
                    dataset_key=dataset_key,
                    model_key=model_key,
                )
            )
    return tuple(runs)


def load_experiment(ini_path):
    """Parse, validate and expand an ini file into an Experiment; errors are one-line MosaicErrors."""
    shown = str(ini_path)
    absolute = os.path.abspath(shown)
    ini_dir = os.path.dirname(absolute)
    parser = _read_ini(shown)
    if not parser.has_section("PROCESS"):
        raise MosaicError(f"{shown}: missing required section [PROCESS]")
    process, loss_in_ini = _parse_process(_Section(shown, parser, "PROCESS"), ini_dir)
    monitor = _parse_monitor(_Section(shown, parser, "MONITOR"), ini_dir)

    scheme = process.data_scheme + process.pipeline_scheme
    variants_by_type = {type_name: [] for type_name in scheme}
    for name in parser.sections():
        if name not in ("PROCESS", "MONITOR"):
            type_name, modules = _parse_class_section(_Section(shown, parser, name), ini_dir, variants_by_type)
            variants_by_type[type_name].extend(modules)
    for key, types in (("data_scheme", process.data_scheme), ("pipeline_scheme", process.pipeline_scheme)):
        for type_name in types:
            if not variants_by_type[type_name]:
                raise MosaicError(f"{where(shown, 'PROCESS', key)}: no section has type {type_name!r}")
    module_json = {id(m): _module_json(m) for variants in variants_by_type.values() for m in variants}
    for variants in variants_by_type.values():
        _check_distinct_variants(variants, module_json, shown)

    process_json = _process_json(process, loss_in_ini)
    runs = _expand_runs(variants_by_type, module_json, process, monitor, process_json)
    return Experiment(ini_path=absolute, process=process, monitor=monitor, runs=runs)
