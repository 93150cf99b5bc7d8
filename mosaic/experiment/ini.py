"""Read and validate an ini file into an Experiment; errors name the file, section and key. Standard library only."""

import ast
import configparser
import itertools
import math
import os
import re

from mosaic.errors import ConfigError, where
from mosaic.experiment.classscan import check_class, resolve_file
from mosaic.experiment.expand import check_distinct_variants, expand_runs, module_json_text, read_rounds
from mosaic.experiment.model import Experiment, Module, Monitor, Process, format_value
from mosaic.experiment.suggest import did_you_mean, found_instead
from mosaic.experiment.torchnames import LOSSES
from mosaic.experiment.training import is_training_setting, read_training
from mosaic.experiment.values import INT, MAX_COMBINATIONS, parse_size, parse_values, typed_scalar

RESERVED_KEYS = ("type", "class", "path_to_class", "key")
_GPU_NAME = re.compile(r"cuda:[0-9]+")
DEFAULT_KEY_TEMPLATE = "{class}"
_NO_DEFAULT_SECTION = "\x00mosaic: no default section\x00"


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
        raise ConfigError(ini_path, "file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(ini_path, f"cannot read: {error}") from None
    except configparser.Error as error:
        raise _ini_error(ini_path, error) from None
    return parser


def _ini_error(ini_path, error):
    """A one-line ConfigError for a configparser error, with the line number when there is one."""
    if isinstance(error, configparser.DuplicateOptionError):
        return ConfigError(ini_path, f"duplicate key (line {error.lineno})", error.section, error.option)
    if isinstance(error, configparser.DuplicateSectionError):
        return ConfigError(ini_path, f"duplicate section (line {error.lineno})", error.section)
    if isinstance(error, configparser.MissingSectionHeaderError):
        return ConfigError(ini_path, f"line {error.lineno}: text before the first [section] header: {error.line!r}")
    if isinstance(error, configparser.ParsingError):
        lineno, line = error.errors[0]
        if isinstance(line, str) and line[:1] in "'\"":  # configparser gives the line as its repr
            try:
                line = ast.literal_eval(line)
            except (ValueError, SyntaxError):
                pass
        return ConfigError(ini_path, f"line {lineno}: cannot parse {str(line).strip()!r} (expected 'key = value')")
    return ConfigError(ini_path, " ".join(str(error).split()))


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
        raise ConfigError(self.ini_path, message, self.name, key)

    def text(self, key, default=None, required=False):
        self.used.add(key)
        if key not in self.items:
            if required:
                self.fail(key, "required key is missing" + found_instead(key, set(self.items) - self.used))
            return default
        value = self.items[key].strip()
        if not value:
            self.fail(key, "empty value")
        return value

    def integer(self, key, default=None, minimum=None, required=False):
        value = self.text(key, None, required)
        if value is None:
            return default
        if not INT.fullmatch(value):
            self.fail(key, f"not an integer: {value!r}")
        number = int(value)
        if minimum is not None and number < minimum:
            self.fail(key, f"must be >= {minimum}, got {number}")
        return number

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

    def extra(self, allowed=True):
        """Every key not read so far, typed, in ini order.

        A key close to one this section reads is taken for a typo (`multiplicty`), an error; other unknown
        keys are errors too unless `allowed`.
        """
        extra = [(key, value) for key, value in self.items.items() if key not in self.used]
        for key, _ in extra:
            # a stricter cutoff where extra keys are allowed: `epochs_max` is a key of its own, not a typo
            hint = did_you_mean(key, self.used, cutoff=0.75 if not allowed else 0.85)
            if hint or not allowed:
                self.fail(key, f"unknown key{hint or ' (known: ' + ', '.join(sorted(self.used)) + ')'}")
        return tuple((key, typed_scalar(value)) for key, value in extra)

    def torch_name(self, key, default, names, where_from):
        """A name that must be one of torch's (`names`, known without importing torch)."""
        value = self.identifier(key, default)
        if value not in names:
            self.fail(key, f"{where_from} has no {value!r}{did_you_mean(value, names)}")
        return value


def _local_path(written, ini_dir):
    return os.path.normpath(os.path.join(ini_dir, os.path.expanduser(written)))


def _parse_process(section, ini_dir):
    training = read_training(section, required=True)
    first = {name: values[0] for name, values in training}
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
        loss_file = resolve_file(loss_path, ini_dir, section.place("path_to_class_loss_function"))
        check_class(loss_file, loss_class, section.place("class_loss_function"), loss_path)
    process = Process(
        lr=first["lr"],
        epochs=section.integer("epochs", minimum=1, required=True),
        data_scheme=tuple(data_scheme),
        pipeline_scheme=tuple(pipeline_scheme),
        run_files_path=_local_path(section.text("run_files_path", ".runs"), ini_dir),
        loss_function=section.torch_name("loss_function", "MSELoss", LOSSES, "torch.nn"),
        class_loss_function=loss_class,
        path_to_class_loss_function=loss_file,
        optimizer=first["optimizer"],
        seed=section.integer("seed", 0),
        checkpoint_every=section.integer("checkpoint_every", None, minimum=0),
        deterministic=section.boolean("deterministic", True),
        traced_step=section.boolean("traced_step", False),
        extra=section.extra(),
        training=training,
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
        **_multiplicity(section),
        cache_database_path=_local_path(section.text("cache_database_path", "./cache.db"), ini_dir),
        cache_size=_cache_size(section),
        runs_per_gpu=section.integer("runs_per_gpu", 1, minimum=1),
        batch_cache_limit=_batch_cache_limit(section),
        extra=section.extra(allowed=False),  # last: every key not read above
    )


def _multiplicity(section):
    """[MONITOR] multiplicity: a count, or 'auto' (adaptive replicates, mosaic/ops/rounds.py): then the runs
    start at min_multiplicity (default 3) and rounds add replicates up to max_multiplicity (default 10) and
    max_runs (optional)."""
    if section.items.get("multiplicity", "").strip().lower() != "auto":
        for key in ("min_multiplicity", "max_multiplicity", "max_runs"):
            if key in section.items:
                section.fail(key, "is only read with multiplicity = auto")
        return {"multiplicity": section.integer("multiplicity", 1, minimum=1)}
    section.used.add("multiplicity")
    low = section.integer("min_multiplicity", 3, minimum=2)
    return {"multiplicity": low, "adaptive": True,
            "max_multiplicity": section.integer("max_multiplicity", max(low, 10), minimum=low),
            "max_runs": section.integer("max_runs", None, minimum=1)}


def _gpu_list(section):
    """'cuda:0, cuda:1' -> ('cuda:0', 'cuda:1'); None when absent or 'None'. Spaces also separate."""
    if section.items.get("gpu_available", "").strip() == "None":
        section.used.add("gpu_available")
        return None
    names = section.name_list("gpu_available")
    if names is None:
        return None
    devices = tuple(part for name in names for part in name.split())
    for device in devices:
        if not _GPU_NAME.fullmatch(device):
            section.fail("gpu_available", f"{device!r} is not a GPU name like cuda:0 (write cuda:0, cuda:1 or None)")
    return devices


def _optional_count(section, key):
    if section.items.get(key, "").strip() == "None":
        section.used.add(key)
        return None
    return section.integer(key, None, minimum=1)


def _batch_cache_limit(section):
    """[MONITOR] batch_cache: 'auto' (default: a share of the free memory), or a size such as 2G (0: never)."""
    value = section.text("batch_cache", "auto")
    if value.strip().lower() == "auto":
        return None
    if value.strip() == "0":
        return 0
    try:
        return parse_size(value)
    except ValueError as error:
        section.fail("batch_cache", str(error))


def _cache_size(section):
    value = section.text("cache_size", "1G")
    try:
        return parse_size(value)
    except ValueError as error:
        section.fail("cache_size", str(error))


def _parse_class_section(section, ini_dir, scheme_types):
    """Expand one class section into its Module variants, in grid order (first key outermost)."""
    type_name = section.text("type", required=True)
    if type_name not in scheme_types:
        section.fail("type", f"type {type_name!r} is in neither data_scheme nor pipeline_scheme")
    section.text("class", required=True)
    path_written = section.text("path_to_class", required=True)
    path = resolve_file(path_written, ini_dir, section.place("path_to_class"))
    template = section.text("key", DEFAULT_KEY_TEMPLATE)

    training = read_training(section, required=False)  # not the class's parameters: the runs' settings
    grid_keys = [key for key in section.items
                 if key == "class" or (key not in RESERVED_KEYS and not is_training_setting(key))]
    grid = [parse_values(section.items[key], section.place(key)) for key in grid_keys]
    class_index = grid_keys.index("class")
    for class_name in grid[class_index]:
        if not isinstance(class_name, str) or not class_name.isidentifier():
            section.fail("class", f"not a valid class name: {class_name!r}")
        check_class(path, class_name, section.place("class"), path_written)
    key_parts = _parse_key_template(template, section, grid_keys)
    combinations = math.prod(len(values) for values in grid)
    if combinations > MAX_COMBINATIONS:
        raise ConfigError(section.ini_path, f"its parameters give {combinations} combinations"
                          f" (at most {MAX_COMBINATIONS})", section=section.name)

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
                training=training,
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




def _check_scheme_types(shown, parser, process):
    """Every type of the schemes has a section, checked before the sections: a misspelled scheme type
    (`pipeline_scheme = enc, outt`) is named as such, not as a section whose type is unknown."""
    section_types = {parser.get(name, "type").strip() for name in parser.sections()
                     if name not in ("PROCESS", "MONITOR") and parser.has_option(name, "type")}
    for key, types in (("data_scheme", process.data_scheme), ("pipeline_scheme", process.pipeline_scheme)):
        for type_name in types:
            if type_name not in section_types:
                unused = section_types - set(process.data_scheme) - set(process.pipeline_scheme)
                raise ConfigError(shown, f"no section has type {type_name!r}"
                                  f"{did_you_mean(type_name, unused or section_types)}", section="PROCESS", key=key)


def run_files_path_of(ini_path):
    """[PROCESS] run_files_path as load_experiment resolves it, without checking or expanding the rest."""
    shown = str(ini_path)
    section = _Section(shown, _read_ini(shown), "PROCESS")
    return _local_path(section.text("run_files_path", ".runs"), os.path.dirname(os.path.abspath(shown)))


def single_replicate_warning(ini_path):
    """The warning for an ini that leaves [MONITOR] multiplicity at 1 by not giving it, or None."""
    shown = str(ini_path)
    parser = _read_ini(shown)
    if not parser.has_section("MONITOR"):
        return (f"{shown}: no [MONITOR] section: each run is trained once (multiplicity = 1); add [MONITOR]"
                " multiplicity = 3 for replicates to compare")
    if not parser.has_option("MONITOR", "multiplicity"):
        return (f"{shown}: [MONITOR] gives no multiplicity: each run is trained once (multiplicity = 1); add"
                " multiplicity = 3 for replicates to compare")
    return None


def load_experiment(ini_path):
    """Parse, validate and expand an ini file into an Experiment; errors are one-line MosaicErrors."""
    shown = str(ini_path)
    absolute = os.path.abspath(shown)
    ini_dir = os.path.dirname(absolute)
    parser = _read_ini(shown)
    if not parser.has_section("PROCESS"):
        raise ConfigError(shown, "missing required section [PROCESS]")
    process, loss_in_ini = _parse_process(_Section(shown, parser, "PROCESS"), ini_dir)
    monitor = _parse_monitor(_Section(shown, parser, "MONITOR"), ini_dir)

    scheme = process.data_scheme + process.pipeline_scheme
    _check_scheme_types(shown, parser, process)
    variants_by_type = {type_name: [] for type_name in scheme}
    for name in parser.sections():
        if name not in ("PROCESS", "MONITOR"):
            type_name, modules = _parse_class_section(_Section(shown, parser, name), ini_dir, variants_by_type)
            variants_by_type[type_name].extend(modules)
    for key, types in (("data_scheme", process.data_scheme), ("pipeline_scheme", process.pipeline_scheme)):
        for type_name in types:
            if not variants_by_type[type_name]:
                raise ConfigError(shown, f"no section has type {type_name!r}", "PROCESS", key)
    module_json = {id(m): module_json_text(m) for variants in variants_by_type.values() for m in variants}
    for variants in variants_by_type.values():
        check_distinct_variants(variants, module_json, shown)

    total = math.prod(len(variants) for variants in variants_by_type.values()) * monitor.multiplicity
    total *= math.prod(len(values) for _, values in process.training)
    if total > MAX_COMBINATIONS:
        raise ConfigError(shown, f"the experiment gives {total} runs (at most {MAX_COMBINATIONS})")
    counts = read_rounds(shown)[1] if monitor.adaptive else None
    runs = expand_runs(variants_by_type, module_json, process, monitor, loss_in_ini, shown, counts)
    return Experiment(ini_path=absolute, process=process, monitor=monitor, runs=runs)
