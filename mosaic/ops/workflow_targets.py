"""What the workflow's rules make and read, from the experiment: the run files the database is built from,
the file names of the plots of each dataset key, the database's signature, the ini's text for the report.
Used by workflow/rules/*.smk; kept here so that it is plain, testable Python."""

import hashlib
import json
import os
import re

from mosaic import runfiles


def result_files(experiment, runs_dir, partial=False, also=()):
    """The result files of every run. With partial=True, only those already written plus those
    of the runs in `also` (hashes): the database is then built without training anything else."""
    files = []
    for run in experiment.runs:
        pair = [runfiles.run_file(runs_dir, run.run_hash, name) for name in (runfiles.RESULT, runfiles.LOSSES)]
        if not partial or run.run_hash in also or all(os.path.exists(p) for p in pair):
            files += pair
    return files


def read_run_list(path):
    """The run hashes listed in `path`, one a line (runfiles.RUN_LIST, written by mosaic_rerun)."""
    if not path:
        return frozenset()
    with open(path) as handle:
        return frozenset(line.strip() for line in handle if line.strip())


def safe_name(key):
    """A file-name-safe form of a dataset key."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", key).strip("_") or "dataset"


def dataset_names(experiment):
    """{file-name-safe name: dataset key} for the dataset keys of the experiment, in run order."""
    names = {}
    for run in experiment.runs:
        name = safe_name(run.dataset_key)
        while name in names and names[name] != run.dataset_key:
            name += "_"
        names.setdefault(name, run.dataset_key)
    return names


def aggregation_signature(experiment):
    """A digest of what the database shows beyond the run files (ids, pipelines, keys, PROCESS):
    when it changes (a new key template, say), the database is rebuilt without any training."""
    rows = [
        (run.run_id, run.run_hash, run.pipeline, [m.key for m in run.modules])
        for run in experiment.runs
    ]
    process = experiment.process
    payload = json.dumps([rows, repr(process)], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def read_text(path):
    """A file's text (the ini's: a param of the rule that copies it, so that an edit redoes the copy)."""
    with open(path, encoding="utf-8") as handle:
        return handle.read()
