"""mosaic_status: what the run files say of every run (mosaic/results/status_text.py writes it). No server needed.

Reading 100,000 runs' files takes seconds; an index under the run files path (.status-index)
keeps what status shows of each finished (done or failed) run, with what it was read from: the
modification time of its folder and the stamp (runfiles.file_stamp: times, size, inode) of the file
whose content it keeps (result.json of a done run, error.txt of a failed one). A file created,
removed or renamed into place changes the folder's time (so does a job taking the run's lock: it
touches the folder); a file written in place (cp, an editor) changes its own stamp. A run whose
folder time and stamp are unchanged is read from the index, the others from their files.

Expanding an ini of 100,000 runs takes most of a second too: the runs status lists (their hashes and
labels, in order) are kept beside the index (.status-runs) with a digest of the ini's text and of
the code that expands and labels them, and used while both are unchanged (load_experiment checks and expands the
ini otherwise).
"""

import hashlib
import marshal
import os
import time
from typing import NamedTuple

from mosaic import runfiles
from mosaic.errors import MosaicError

INDEX = ".status-index"  # Python's marshal format: five times faster to read than JSON
LISTING = ".status-runs"  # the runs of the ini status last listed, with the digest they belong to
INDEXED_FIELDS = ("train_loss", "test_loss", "duration_s", "diverged", "epochs")  # of result.json
SETTLED_NS = 10 * 10**9  # a folder or file changed this recently is read again next time (coarse clocks)
CONTENT = {"done": runfiles.RESULT, "error": runfiles.ERROR}  # the file whose content an entry keeps
CONTENT_SUFFIX = {status: os.sep + name for status, name in CONTENT.items()}  # joined without os.path.join


class ListedRun(NamedTuple):
    run_id: int
    run_hash: str
    label: str  # the pipeline, its parameters named (see listed)


class Listing(NamedTuple):
    """What status needs of an experiment: its run files path and its runs in order."""

    run_files_path: str
    runs: tuple
    round: int = 1  # multiplicity = auto: the round of replicates under way (expand.read_rounds)


def listing(ini_path):
    """The ini's Listing, from .status-runs when it was made from the same ini text by the same code,
    else from load_experiment (whose errors are raised), then kept for next time."""
    from mosaic.experiment import load_experiment
    from mosaic.experiment.expand import read_rounds
    from mosaic.experiment.ini import run_files_path_of

    digest = run_files_path = None
    round_number, counts = read_rounds(ini_path)
    try:
        with open(ini_path, "rb") as handle:
            digest = _listing_digest(os.path.abspath(ini_path), handle.read() + repr(sorted(counts.items())).encode())
        run_files_path = run_files_path_of(ini_path)
        with open(os.path.join(run_files_path, LISTING), "rb") as handle:
            kept = marshal.loads(handle.read())
        if kept["digest"] == digest and kept["run_files_path"] == run_files_path:
            return Listing(run_files_path, tuple(map(ListedRun._make, zip(
                range(1, len(kept["hashes"]) + 1), kept["hashes"], kept["labels"]))), round_number)
    except (OSError, EOFError, ValueError, TypeError, KeyError, MosaicError):
        pass  # none kept yet, another ini, damaged, or an ini that load_experiment will explain
    found = listed(load_experiment(ini_path))
    if digest is not None and os.path.isdir(found.run_files_path):
        try:
            with runfiles.replacing(os.path.join(found.run_files_path, LISTING)) as tmp, open(tmp, "wb") as out:
                marshal.dump({"digest": digest, "run_files_path": found.run_files_path,
                              "hashes": [run.run_hash for run in found.runs],
                              "labels": [run.label for run in found.runs]}, out)
        except OSError:  # a read-only run files path: status still works, without it
            pass
    return found._replace(round=round_number)


def module_label(module):
    """A class with its parameters named: 'mlp_funnel(length=4, width=2)'."""
    from mosaic.experiment.model import format_value

    return f"{module.class_name}({', '.join(f'{name}={format_value(value)}' for name, value in module.params)})"


def listed(experiment):
    """The Listing of a loaded Experiment; a run's label is its pipeline, each parameter named, then the
    training settings that vary between the runs: 'dataset_OR(batch_size=1) | mlp_funnel(length=4, width=2) |
    lr=0.01'."""
    from mosaic.experiment.training import display, varying_names

    labels = {}  # by module id: the runs share their modules
    for run in experiment.runs:
        for module in run.modules:
            if id(module) not in labels:
                labels[id(module)] = module_label(module)
    varying = varying_names([{run.training: None for run in experiment.runs}])
    return Listing(experiment.process.run_files_path, tuple(
        ListedRun(run.run_id, run.run_hash, " | ".join([labels[id(m)] for m in run.modules]
                                                       + ([display(run.training, varying)] if varying else [])))
        for run in experiment.runs))


def _listing_digest(ini_path, text):
    """A digest of the ini's path and text (with the replicates of multiplicity = auto), of the sources of
    mosaic.experiment, which expands it, and of this file, which labels the runs."""
    digest = hashlib.sha256(ini_path.encode() + b"\0" + text)
    package = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiment")
    sources = [os.path.join(package, name) for name in sorted(os.listdir(package)) if name.endswith(".py")]
    for path in [*sources, os.path.abspath(__file__)]:
        with open(path, "rb") as handle:
            digest.update(os.path.basename(path).encode() + b"\0" + handle.read())
    return digest.hexdigest()


def states_of(experiment):
    """{run_hash: RunState} of every run of an Experiment (see states_in)."""
    return states_in(experiment.process.run_files_path, experiment.runs)


def states_in(run_files_path, runs):
    """{run_hash: RunState} of `runs` (anything with a run_hash). A done run's `result` holds the
    INDEXED_FIELDS of its result.json (all of them when it was just read)."""
    index_path = os.path.join(run_files_path, INDEX)
    index = _load_index(index_path)  # other experiments may share the run files path: their entries stay
    edited = False
    settled = time.time_ns() - SETTLED_NS
    states = {}
    prefix = os.path.join(run_files_path, "")
    for run in runs:
        run_hash = run.run_hash
        folder = prefix + run_hash
        try:
            changed = os.stat(folder).st_mtime_ns
        except OSError:  # no folder: never started
            states[run_hash] = runfiles.RunState("pending")
            continue
        entry = index.get(run_hash)
        if (entry is not None and len(entry) == 5 and entry[0] == changed and entry[1] in CONTENT
                and entry[4] == runfiles.file_stamp(folder + CONTENT_SUFFIX[entry[1]])):
            fields = None if entry[2] is None else dict(zip(INDEXED_FIELDS, entry[2]))
            states[run_hash] = runfiles.RunState(entry[1], result=fields, error=entry[3])
            continue
        # stamped before reading: a change meanwhile makes another stamp, seen next time
        stamps = {name: runfiles.file_stamp(os.path.join(folder, name)) for name in CONTENT.values()}
        state = states[run_hash] = runfiles.read_state(run_files_path, run_hash)
        stamp = stamps[CONTENT[state.status]] if state.status in CONTENT else None
        if stamp is not None and max(changed, stamp[0]) < settled:
            fields = [state.result.get(name) for name in INDEXED_FIELDS] if state.result else None
            index[run_hash] = [changed, state.status, fields, state.error, stamp]
            edited = True
        elif entry is not None:
            del index[run_hash]
            edited = True
    if edited:
        _save_index(index_path, index)
    return states


def _load_index(path):
    try:
        with open(path, "rb") as handle:
            index = marshal.loads(handle.read())
    except (OSError, EOFError, ValueError, TypeError):  # none yet, or damaged: every run is read from its files
        return {}
    return index if isinstance(index, dict) else {}


def _save_index(path, index):
    try:
        with runfiles.replacing(path) as tmp, open(tmp, "wb") as handle:
            marshal.dump(index, handle)
    except OSError:  # a read-only run files path: status still works, without the index
        pass
