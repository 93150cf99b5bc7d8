"""A run's spec: everything its training job needs, so that the job never reads the ini. Standard library only.

Two parts, written by the workflow into the run's folder (mosaic/ops/spec_files.py writes them; their file
names: mosaic/runfiles.py):
- the spec (spec.json), an input of the run's job: what the run computes (classes, parameters,
  the fingerprints of their code, PROCESS values with the run's own training settings, seed, replicate)
  and its epochs. Snakemake
  reruns the job when its content changes, and only then: renaming the ini, renumbering the runs
  or reformatting a class file leave it unchanged.
- the context (context.json), not tracked: what may change without retraining (run id, section
  names and keys, file locations, [MONITOR], checkpoint_every).
"""

import dataclasses
import hashlib
import json

from mosaic.experiment.expand import process_values
from mosaic.experiment.fingerprint import file_fingerprint
from mosaic.experiment.model import PROCESS_IDENTITY_FIELDS, Experiment, Module, Monitor, Process, Run

SPEC_FORMAT = 1


class Fingerprints(dict):
    """Code fingerprints of class files, each file read once."""

    def __missing__(self, path):
        self[path] = file_fingerprint(path)
        return self[path]


def run_spec(experiment, run, fingerprints):
    """The tracked part of a run (see the module docstring)."""
    process = experiment.process
    loss_path = process.path_to_class_loss_function
    return {
        "format": SPEC_FORMAT,
        "run_hash": run.run_hash,
        "replicate": run.replicate,
        "seed": run.seed,
        "epochs": process.epochs,
        "modules": [
            {
                "type": m.type,
                "class": m.class_name,
                "path_in_ini": m.path_in_ini,
                "params": [list(p) for p in m.params],
                "code": fingerprints[m.path],
            }
            for m in run.modules
        ],
        "process": process_values(process, run.training),
        "loss_code": fingerprints[loss_path] if loss_path else None,
    }


def run_context(experiment, run, settings=None):
    """The untracked part of a run (see the module docstring); `settings`: experiment_settings()."""
    process, monitor = settings or experiment_settings(experiment)
    return {
        "run_id": run.run_id,
        "ini": experiment.ini_path,
        "n_data": run.n_data,
        "pipeline": run.pipeline,
        "dataset_key": run.dataset_key,
        "model_key": run.model_key,
        "modules": [
            {"section": m.section, "path": m.path, "key_template": m.key_template, "key": m.key}
            for m in run.modules
        ],
        "process": process,
        "monitor": monitor,
    }


def experiment_settings(experiment):
    """The [PROCESS] and [MONITOR] parts of every run's context, computed once per experiment."""
    return dataclasses.asdict(experiment.process), dataclasses.asdict(experiment.monitor)


def spec_text(data):
    return json.dumps(data, sort_keys=True) + "\n"


def identity(spec):
    """A digest of what the run computes: its spec but the epochs. A checkpoint is continued only
    by a run of the same identity (same code, same parameters)."""
    rest = {key: value for key, value in spec.items() if key != "epochs"}
    return hashlib.sha256(spec_text(rest).encode()).hexdigest()[:16]


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def run_training(spec):
    """A run's training settings from its spec: {name: value}, lr and optimizer, then each other one set
    (weight_decay, scheduler, scheduler_step_size, clip_grad_norm, validation_split, ...)."""
    return {key: _tuples(value) for key, value in spec["process"].items()
            if key in ("lr", "optimizer") or key not in PROCESS_IDENTITY_FIELDS}


def experiment_of(spec, context):
    """(Experiment holding this one run, the Run) rebuilt from a spec and its context; the run's training
    settings are its own (Run.training, and lr and optimizer in the Process)."""
    training = run_training(spec)
    modules = tuple(
        Module(
            section=where["section"],
            type=what["type"],
            class_name=what["class"],
            path=where["path"],
            path_in_ini=what["path_in_ini"],
            key_template=where["key_template"],
            key=where["key"],
            params=_tuples(what["params"]),
        )
        for what, where in zip(spec["modules"], context["modules"])
    )
    run = Run(
        run_id=context["run_id"],
        run_hash=spec["run_hash"],
        replicate=spec["replicate"],
        seed=spec["seed"],
        modules=modules,
        n_data=context["n_data"],
        pipeline=context["pipeline"],
        dataset_key=context["dataset_key"],
        model_key=context["model_key"],
        training=tuple(sorted(training.items())),
    )
    process_fields = {key: _tuples(value) for key, value in context["process"].items()}
    process_fields.update({key: spec["process"][key] for key in PROCESS_IDENTITY_FIELDS}, epochs=spec["epochs"])
    process_fields["training"] = tuple((name, (value,)) for name, value in run.training)
    monitor_fields = {key: _tuples(value) for key, value in context["monitor"].items()}
    experiment = Experiment(
        ini_path=context["ini"], process=Process(**process_fields), monitor=Monitor(**monitor_fields), runs=(run,)
    )
    return experiment, run


def describe(spec, context):
    """What result.json says of a run, so that a run folder maps back to its classes and values
    without the ini."""
    return {
        "modules": [
            {
                "type": what["type"],
                "section": where["section"],
                "class": what["class"],
                "path_to_class": what["path_in_ini"],
                "key": where["key"],
                "params": dict(what["params"]),
                "code": what["code"],
            }
            for what, where in zip(spec["modules"], context["modules"])
        ],
        "process": dict(spec["process"], epochs=spec["epochs"]),
        "loss_code": spec["loss_code"],
    }


def description(experiment, run):
    """What result.json says of a run trained without a spec (train_run called directly, as tests do):
    describe() of the spec and context that the workflow would write for it."""
    return describe(run_spec(experiment, run, Fingerprints()), run_context(experiment, run))
