"""A run's training settings (lr, optimizer and its arguments, a schedule, clipping, a validation part): read
from [PROCESS] and the class sections that override them, checked against the torch names, expanded into the
grid of each pipeline. Standard library only.

Each setting may be a list or a range (config/README.md's value grammar): the runs of a pipeline are the product
of the list-valued settings. A class section's setting replaces [PROCESS]'s for the runs that use that section.
"""

import itertools
import math

from mosaic.errors import ConfigError
from mosaic.experiment.model import OPTIMIZER_ARGS, SCHEDULER_PREFIX, TRAINING_SETTINGS, format_value
from mosaic.experiment.suggest import did_you_mean
from mosaic.experiment.torchnames import OPTIMIZER_ARGUMENTS, OPTIMIZERS, SCHEDULER_REQUIRED, SCHEDULERS
from mosaic.experiment.values import FLOAT, INT, parse_values

_NUMBERS = ("lr", "weight_decay", "momentum", "beta1", "beta2", "eps", "dampening", "alpha", "rho", "lr_decay",
            "momentum_decay", "initial_accumulator_value", "clip_grad_norm", "validation_split")
_BOOLEANS = ("nesterov", "amsgrad", "centered", "maximize")
_TORCH_ARGUMENT = {"beta1": "betas", "beta2": "betas"}  # the ini's name -> the optimizer's argument
_ORDER = {name: index for index, name in enumerate(TRAINING_SETTINGS)}


def is_training_setting(key):
    """A key naming a training setting: one of TRAINING_SETTINGS or scheduler_<argument>."""
    return key in _ORDER or (key.startswith(SCHEDULER_PREFIX) and len(key) > len(SCHEDULER_PREFIX))


def _order(name):
    """Grid order: lr outermost, then optimizer, its arguments, the schedule and its arguments, the rest."""
    return (_ORDER.get(name, _ORDER["scheduler"]), name)  # scheduler_<argument> right after scheduler


def read_training(section, required):
    """The training settings a section gives, in grid order: ((name, (value, ...)), ...); [PROCESS]
    (`required`) must give lr. `section` is ini.py's _Section: errors name its file, section and key."""
    settings = []
    if required:
        section.text("lr", required=True)
        for name in TRAINING_SETTINGS:  # known keys: a near miss (`optimiser`) gets "did you mean"
            section.used.add(name)
        if "optimizer" not in section.items:
            settings.append(("optimizer", ("Adam",)))
    names = sorted((key for key in section.items if is_training_setting(key)), key=_order)
    for name in names:
        values = parse_values(section.text(name), section.place(name))
        settings.append((name, tuple(_typed(section, name, value) for value in values)))
    return tuple(sorted(settings, key=lambda setting: _order(setting[0])))


def _typed(section, name, value):
    """One value of a setting, checked and typed: numbers as floats, switches as booleans, names as names."""
    if name in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            section.fail(name, f"not a number: {format_value(value)!r}")
        value = float(value)
        if not math.isfinite(value) or value < 0:
            section.fail(name, f"must be a finite number >= 0, got {format_value(value)}")
        if name == "validation_split" and not 0 < value < 1:
            section.fail(name, f"must be between 0 and 1 (the share of the training data), got {value}")
        return value
    if name in _BOOLEANS:
        if not isinstance(value, bool):
            section.fail(name, f"not a boolean (True/False): {format_value(value)!r}")
        return value
    if name == "optimizer":
        return _torch_name(section, name, value, OPTIMIZERS, "torch.optim")
    if name == "scheduler":
        return _torch_name(section, name, value, SCHEDULERS, "torch.optim.lr_scheduler (of those Mosaic steps)")
    if isinstance(value, str) and value.split() and all(INT.fullmatch(p) or FLOAT.fullmatch(p) for p in value.split()):
        return tuple(int(p) if INT.fullmatch(p) else float(p) for p in value.split())  # milestones = 10 20
    return value


def _torch_name(section, key, value, names, where_from):
    if not isinstance(value, str) or not value.isidentifier():
        section.fail(key, f"not a valid name: {format_value(value)!r}")
    if value not in names:
        section.fail(key, f"{where_from} has no {format_value(value)!r}{did_you_mean(str(value), names)}")
    return value


def _optimizer_names(optimizer):
    """The ini names of the optimizer arguments that `optimizer` takes, in OPTIMIZER_ARGS order."""
    takes = OPTIMIZER_ARGUMENTS.get(optimizer, ())
    return [name for name in OPTIMIZER_ARGS if _TORCH_ARGUMENT.get(name, name) in takes]


def check_arguments(settings, sources, ini_path):
    """Every optimizer argument of one run's settings ({name: value}) is one its optimizer takes, every
    scheduler_<argument> one its scheduler takes; `sources`: {name: the section that set it}."""
    optimizer = settings["optimizer"]
    takes = _optimizer_names(optimizer)
    for name in settings:
        if name in OPTIMIZER_ARGS and name not in takes:
            raise ConfigError(ini_path, f"{optimizer} takes no argument {_TORCH_ARGUMENT.get(name, name)!r}"
                              f" (it takes: {', '.join(takes) or 'none'})", sources[name], name)
        if name.startswith(SCHEDULER_PREFIX):
            scheduler = settings.get("scheduler")
            argument = name[len(SCHEDULER_PREFIX):]
            if scheduler is None:
                raise ConfigError(ini_path, "a scheduler argument without a scheduler (add scheduler = StepLR,"
                                  " for instance)", sources[name], name)
            if argument not in SCHEDULERS[scheduler]:
                raise ConfigError(ini_path, f"{scheduler} takes no argument {argument!r}"
                                  f" (it takes: {', '.join(SCHEDULERS[scheduler])})", sources[name], name)
    scheduler = settings.get("scheduler")
    missing = [SCHEDULER_PREFIX + arg for arg in SCHEDULER_REQUIRED.get(scheduler, ())
               if SCHEDULER_PREFIX + arg not in settings]
    if missing:
        raise ConfigError(ini_path, f"scheduler = {scheduler} needs {', '.join(missing)}", sources["scheduler"],
                          "scheduler")


def pipeline_grid(process_training, modules, ini_path, grids):
    """The training settings of each run of one pipeline, in grid order: a list of tuples of (name, value)
    sorted by name. [PROCESS]'s settings, each replaced by a section's of the pipeline that sets it; two
    sections of the pipeline setting the same name is an error. `grids`: a dict shared between the pipelines
    of an experiment, the grid of each set of overriding sections (most pipelines share one)."""
    overrides = tuple((module.section, module.training) for module in modules if module.training)
    if overrides not in grids:
        grids[overrides] = _grid(process_training, overrides, ini_path)
    return grids[overrides]


def _grid(process_training, overrides, ini_path):
    settings = dict(process_training)
    sources = dict.fromkeys(settings, "PROCESS")
    for section, training in overrides:
        for name, values in training:
            if sources.get(name, "PROCESS") != "PROCESS":
                raise ConfigError(ini_path, f"[{sources[name]}] and [{section}] both set {name} for the runs"
                                  " that use both")
            settings[name], sources[name] = values, section
    names = sorted(settings, key=_order)
    grid = []
    for values in itertools.product(*(settings[name] for name in names)):
        combination = tuple(sorted(zip(names, values)))
        check_arguments(dict(combination), sources, ini_path)
        grid.append(combination)
    return grid


def varying_names(grids):
    """The names whose value differs between the runs of an experiment (`grids`: the distinct grids of its
    pipelines), a name that some runs lack included."""
    values, combinations, counts = {}, 0, {}
    for grid in grids:
        combinations += len(grid)
        for combination in grid:
            for name, value in combination:
                values.setdefault(name, set()).add((type(value), value))
                counts[name] = counts.get(name, 0) + 1
    return sorted((name for name in values if len(values[name]) > 1 or counts[name] < combinations), key=_order)


def display(training, names):
    """'lr=0.01, optimizer=SGD': a run's values of `names` (those that vary), as the pipeline text ends."""
    values = dict(training)
    return ", ".join(f"{name}={_shown(values[name])}" for name in names if name in values)


def _shown(value):
    return " ".join(map(format_value, value)) if isinstance(value, tuple) else format_value(value)


def extra_settings(training):
    """A run's training settings but lr and optimizer (the ones every run has): {name: value}."""
    return {name: value for name, value in training if name not in ("lr", "optimizer")}
