"""The checks mosaic_run makes before it launches anything, so that a mistake fails once, not once per run.

- a warning when the ini leaves [MONITOR] multiplicity at 1 (nothing can be compared then);
- the constructor check, read from the class files (mosaic/experiment/signatures.py);
- one batch through each distinct pipeline of the runs to train: its data and models built as a run builds them,
  one training batch forward and backward (no optimizer step) and one test batch (with the metrics), on the CPU,
  in a subprocess (`python -m mosaic.run.preflight`), so that mosaic_run itself never imports torch.

A failure is one MosaicError line (exit status 2, bad input: nothing was trained) naming the innermost frame of
the user's own files, `models.py:21: RuntimeError: ...`. `mosaic_run --no-preflight` skips the two checks.
"""

import itertools
import os
import subprocess
import sys
import tempfile

from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment
from mosaic.experiment.ini import single_replicate_warning
from mosaic.experiment.signatures import check_constructors

TIMEOUT_S = 300  # past this the batch check is given up (with a warning), not failed
SKIP = "--no-preflight skips this check"


def before_training(ini, experiment, to_train, check=True, err=None, preexec_fn=None):
    """What mosaic_run does before launching the runs `to_train` of `experiment` (read from `ini`, named as the
    user wrote it): warn of a single replicate, then, when `check`, the constructor and one-batch checks
    (`preexec_fn`: run in the batch check's subprocess before it starts, as subprocess.Popen takes it)."""
    err = err or sys.stderr
    warning = single_replicate_warning(ini)
    if warning:
        print(f"mosaic: warning: {warning}", file=err, flush=True)
    if check:
        check_constructors(to_train, str(ini))
        check_one_batch(ini, distinct_pipelines(to_train), err=err, preexec_fn=preexec_fn)


def distinct_pipelines(runs):
    """The first run of each distinct chain of sections and classes: replicates and other parameter values
    run the same code, so one batch of one of them stands for all."""
    first = {}
    for run in runs:
        first.setdefault(tuple((module.section, module.class_name) for module in run.modules), run)
    return list(first.values())


def check_one_batch(ini, runs, timeout=TIMEOUT_S, err=None, preexec_fn=None):
    """One batch of each run in a subprocess; a MosaicError (its one-line message) if one fails."""
    err = err or sys.stderr
    with tempfile.TemporaryDirectory(prefix="mosaic-preflight-") as folder:
        result, output = os.path.join(folder, "failure.txt"), os.path.join(folder, "output.txt")
        command = [sys.executable, "-m", "mosaic.run.preflight", str(ini), result, *(run.run_hash for run in runs)]
        with open(output, "wb") as log:  # a file, not a pipe: a process the user's code leaves behind cannot hold us
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       preexec_fn=preexec_fn)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()  # its data loader workers see it gone and stop
            process.wait()
            print(f"mosaic: warning: the pre-flight (one batch of {len(runs)} pipelines) took more than {timeout} s"
                  f" and was stopped; launching without it ({SKIP})", file=err, flush=True)
            return
        except BaseException:  # Ctrl-C (which reached it too): it goes with us
            process.kill()
            process.wait()
            raise
        if process.returncode == 0:
            return
        if os.path.exists(result):
            with open(result, encoding="utf-8") as handle:
                raise MosaicError(handle.read().strip())
        with open(output, encoding="utf-8", errors="replace") as handle:
            last = (handle.read().strip().splitlines() or ["no output"])[-1]
        raise MosaicError(f"{ini}: the pre-flight stopped (exit {process.returncode}) before it could say why:"
                          f" {last}; nothing was launched ({SKIP})")


# ---------------------------------------------------------------- in the subprocess


def one_batch(experiment, run):
    """Build the run's pipeline on the CPU (its validation part carved as train_run carves it), push one
    training batch forward and backward and one test batch (and validation batch) forward, as train_run does."""
    from mosaic.run.job import use_download_cache
    from mosaic.run.metrics import Metrics
    from mosaic.run.optimizer import require_parameters
    from mosaic.run.training import Pipeline, evaluate, seed_everything, train_epoch
    from mosaic.run.validation import validation_split_of

    use_download_cache(experiment.monitor)
    seed_everything(run.seed)
    pipeline = Pipeline(run, experiment, "cpu", validation_split_of(dict(run.training)))
    require_parameters(pipeline.parameters)
    train_epoch(pipeline, first_batch(pipeline.train_loader), NoStep(pipeline.parameters))
    metrics = Metrics(experiment, pipeline.models[-1])
    for loader in [loader for loader in (pipeline.test_loader, pipeline.validation_loader) if loader is not None]:
        collected = [] if metrics else None
        evaluate(pipeline, first_batch(loader), collected)
        if metrics:
            metrics.compute(*zip(*collected))


class NoStep:
    """What train_epoch asks of an optimizer, without its step: the gradients cleared, nothing updated. (A
    torch.optim optimizer would also cost the pre-flight the import of torch._dynamo, 1.4 s.)"""

    def __init__(self, parameters):
        self.parameters = parameters

    def zero_grad(self, set_to_none=True):
        for parameter in self.parameters:
            parameter.grad = None

    def step(self):
        pass


def first_batch(loader):
    """The loader's first batch, checked as an epoch checks it, as a list (empty for an empty loader)."""
    from mosaic.run.batches import checked_pair

    return [checked_pair(batch) for batch in itertools.islice(loader, 1)]


def failure_line(error, experiment, run, ini):
    """The one line saying why the run's batch failed: where in the user's files, and what."""
    what = f"pre-flight of run {run.run_id}, {run.pipeline}: nothing was launched; {SKIP}"
    if isinstance(error, MosaicError):
        return f"{error} ({what})"
    frame = user_frame(error, user_files(experiment, run))
    place = f"{shown_path(frame.filename)}:{frame.lineno}" if frame else str(ini)
    summary = (str(error).strip().splitlines() or [""])[0]
    return f"{place}: {type(error).__name__}{': ' + summary if summary else ''} ({what})"


def user_files(experiment, run):
    """The class files of the run (and the loss class's), resolved."""
    paths = [module.path for module in run.modules]
    if experiment.process.path_to_class_loss_function:
        paths.append(experiment.process.path_to_class_loss_function)
    return {os.path.realpath(path) for path in paths}


def user_frame(error, files):
    """The innermost frame of the traceback in the user's files: the class files, or another file of their
    folders (a helper module they import) that is no installed package; None if there is none."""
    import traceback

    folders = {os.path.dirname(path) + os.sep for path in files}
    mosaic_folder = os.path.dirname(os.path.dirname(os.path.realpath(__file__))) + os.sep

    def is_users(path):
        path = os.path.realpath(path)
        if path in files:
            return True
        installed = "site-packages" in path or "dist-packages" in path or path.startswith(mosaic_folder)
        return not installed and any(path.startswith(folder) for folder in folders)

    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if is_users(frame.filename)]
    return frames[-1] if frames else None


def shown_path(path):
    """A path relative to the working directory when it is below it, else absolute."""
    relative = os.path.relpath(os.path.realpath(path), os.path.realpath(os.getcwd()))
    return os.path.realpath(path) if relative.startswith(os.pardir) else relative


def main(argv=None):
    """python -m mosaic.run.preflight INI FAILURE_FILE RUN_HASH...: one batch of each run; on the first failure,
    its line goes to FAILURE_FILE and the exit status is 2."""
    ini, failure_file, *hashes = sys.argv[1:] if argv is None else argv
    try:
        experiment = load_experiment(ini)
        runs = [experiment.run_by_hash(run_hash) for run_hash in hashes]
    except MosaicError as error:
        print(f"mosaic: {error}", file=sys.stderr)
        return 1
    for run in runs:
        try:
            one_batch(experiment, run)
        except Exception as error:  # noqa: BLE001 - any failure of the user's code is the answer
            with open(failure_file, "w", encoding="utf-8") as handle:
                handle.write(failure_line(error, experiment, run, ini) + "\n")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
