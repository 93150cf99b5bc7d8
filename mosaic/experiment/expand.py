"""Expand the variants of each type into the ordered runs, with their content hashes and seeds.

A run's identity is a hash of what it computes (classes, parameters, the PROCESS values that matter, its
training settings, its replicate), so that editing the ini leaves finished runs alone. A run with only lr and
optimizer as training settings hashes as before they could vary. Standard library only.
"""

import hashlib
import itertools
import json
import os

from mosaic.errors import ConfigError
from mosaic.experiment.model import PROCESS_IDENTITY_FIELDS, Run
from mosaic.experiment.training import display, pipeline_grid, varying_names
from mosaic.experiment.values import MAX_COMBINATIONS
from mosaic.runfiles import STATE_DIR

# multiplicity = auto: the replicates each pipeline has reached, kept by mosaic_run (mosaic/ops/rounds.py) in the
# launch folder: {"ini": its absolute path, "round": n, "replicates": {pipeline text: replicates}}
REPLICATES_FILE = os.path.join(STATE_DIR, "replicates.json")


def read_rounds(ini_path):
    """(round, {pipeline text: replicates}) from REPLICATES_FILE when it was written for this ini, else (1, {}):
    every pipeline at min_multiplicity."""
    try:
        with open(REPLICATES_FILE) as handle:
            kept = json.load(handle)
        if kept["ini"] == os.path.abspath(ini_path):
            return int(kept["round"]), {str(k): int(n) for k, n in kept["replicates"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass  # none yet (round 1), another experiment's, or damaged: the rounds start again from what is done
    return 1, {}


def _compact_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def module_json_text(module):
    """A module's part of the hashed payload: [type, class, path as written, [[name, value], ...]]."""
    return _compact_json([module.type, module.class_name, module.path_in_ini, [list(p) for p in module.params]])


def process_values(process, training):
    """The PROCESS values that change what a run computes (not epochs, paths or extra keys), with the run's
    own lr and optimizer, then its other training settings (`training`: the run's, sorted (name, value))."""
    values = {key: getattr(process, key) for key in PROCESS_IDENTITY_FIELDS}
    values.update(training)
    return values


def process_json_text(process, training, loss_path_in_ini):
    """process_values() and the loss class's file as the ini writes it."""
    return _compact_json({**process_values(process, training), "path_to_class_loss_function": loss_path_in_ini})


def _pipeline_hash(module_jsons, process_json):
    """sha256 hex digest of _compact_json({"modules": [...], "process": {...}}), joined from serialized parts."""
    text = '{"modules":[' + ",".join(module_jsons) + '],"process":' + process_json + "}"
    return hashlib.sha256(text.encode()).hexdigest()


def check_distinct_variants(variants, module_json, ini_path):
    """Two identical variants of one type (the same training settings too) would give runs with the same
    content id."""
    seen = {}
    for module in variants:
        other = seen.setdefault((module_json[id(module)], module.training), module)
        if other is not module:
            raise ConfigError(
                ini_path, f"[{other.section}] and [{module.section}] define the same variant "
                f"{module.display()}; their runs would collide"
            )


def expand_runs(variants_by_type, module_json, process, monitor, loss_path_in_ini, ini_path, counts=None):
    """Cartesian product of the variants, first scheme type outermost, then each pipeline's training settings
    (training.pipeline_grid), each repeated multiplicity times, or more where `counts` ({pipeline text: n},
    read_rounds) asks, at most max_multiplicity. The pipeline text ends with the training settings that vary
    between the runs ('... | lr=0.01'). A run's hash and seed depend on its replicate number, not on how many
    replicates its pipeline has: replicate 5 added by a round is replicate 5 of multiplicity = 5."""
    counts = counts or {}
    scheme = process.data_scheme + process.pipeline_scheme
    n_data = len(process.data_scheme)
    displays = {id(m): m.display() for variants in variants_by_type.values() for m in variants}
    grids, settings = {}, {}  # settings: by a run's training, (its process json, its text)
    pipelines = [(modules, pipeline_grid(process.training, modules, ini_path, grids))
                 for modules in itertools.product(*(variants_by_type[type_name] for type_name in scheme))]
    total = sum(len(grid) for _, grid in pipelines) * monitor.multiplicity
    if total > MAX_COMBINATIONS:
        raise ConfigError(ini_path, f"the experiment gives {total} runs (at most {MAX_COMBINATIONS})")
    varying = varying_names(grids.values())
    runs = []
    for modules, grid in pipelines:
        module_jsons = [module_json[id(m)] for m in modules]
        pipeline = " | ".join(displays[id(m)] for m in modules)
        dataset_key = " | ".join(m.key for m in modules[:n_data])
        model_key = " | ".join(m.key for m in modules[n_data:])
        for training in grid:
            if training not in settings:
                settings[training] = process_json_text(process, training, loss_path_in_ini), display(training, varying)
            process_json, shown = settings[training]
            digest = _pipeline_hash(module_jsons, process_json)
            text = f"{pipeline} | {shown}" if shown else pipeline
            wanted = max(monitor.multiplicity, min(counts.get(text, 0), monitor.max_multiplicity or 0))
            for replicate in range(1, wanted + 1):
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
                        pipeline=text,
                        dataset_key=dataset_key,
                        model_key=model_key,
                        training=training,
                    )
                )
    return tuple(runs)
