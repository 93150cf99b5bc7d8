"""The results database of the db_path fixture (conftest.py), built from run files written by hand:
2 datasets × 2 models × 3 widths × 4 replicates = 48 runs, with known final losses and sizes."""

import math
from types import SimpleNamespace

from mosaic.results.database import build
from tests.fakes import fake_module, fake_process, fake_run, write_done, write_error

EPOCHS = 20
REPLICATES = 4
WIDTHS = (2, 3, 4)
DATASETS = ("dataset_OR", "dataset_AND")
MODELS = ("funnel", "brick")


def final_test_loss(dataset, model, width, replicate):
    base = {"dataset_OR": 0.1, "dataset_AND": 0.2}[dataset] + {"funnel": 0.05, "brick": 0.0}[model]
    return base / width + 0.01 * replicate


def loss_curve(final):
    """Decreasing test losses ending exactly at `final`."""
    return [final + 2.0 * (0.7**e - 0.7 ** (EPOCHS - 1)) for e in range(EPOCHS)]


def nb_params(model, width):
    return 10 * width + (1 if model == "funnel" else 0)


def build_database(tmp_path):
    """The database's path; types named 'source' and 'learner', keys data_<class> and net_<class>.

    Run 1 failed, run 2 never ran (no files), run 3 diverged (nan losses); all others are done.
    """
    rfp = str(tmp_path / ".runs")
    runs = []
    for dataset in DATASETS:
        data = fake_module(dataset, "source", dataset, f"data_{dataset}", [("data_size", 200)])
        for model in MODELS:
            for width in WIDTHS:
                net = fake_module(model, "learner", model, f"net_{model}", [("width", width)])
                for replicate in range(REPLICATES):
                    run_id = len(runs) + 1
                    runs.append(fake_run(run_id, f"h{run_id}", (data, net), f"{dataset}(200) | {model}({width})",
                                         replicate, seed=run_id))
                    if run_id == 1:
                        write_error(rfp, "h1", "Traceback\nRuntimeError: x\n")
                    elif run_id != 2:
                        _write_run(rfp, run_id, dataset, model, width, replicate)
    process = fake_process(rfp, ("source",), ("learner",), EPOCHS)
    path = str(tmp_path / "mosaic.db")
    build(SimpleNamespace(ini_path=str(tmp_path / "config.ini"), process=process, runs=tuple(runs)), path)
    return path


def _write_run(rfp, run_id, dataset, model, width, replicate):
    """The files of a finished run: test losses ending at final_test_loss, train losses below them."""
    final = final_test_loss(dataset, model, width, replicate)
    test = loss_curve(final)
    train = [v - final / 2 for v in test]
    if run_id == 3:
        train[-1] = test[-1] = math.nan
    result = {"nb_params": nb_params(model, width), "epochs": EPOCHS, "duration_s": 10.0 * width, "device": "cpu",
              "diverged": run_id == 3}
    rows = [(e + 1, t, v, 0.1) for e, (t, v) in enumerate(zip(train, test))]
    write_done(rfp, f"h{run_id}", rows, result)


def build_tuned_database(tmp_path, finals, names=("lr",), with_validation=True, metric=None):
    """A database of runs differing by their training settings (PROCESS params rows, from Run.training), for
    the tuned comparison: `finals` maps (dataset, model, setting) to [(test_loss, val_loss), ...], one pair a
    replicate, `setting` a tuple of values of `names` (None: the name left unset); val_loss None, or
    with_validation=False, writes no validation column. A pair None is a failed run. With `metric`, the pair
    is also the final value of that metric and of val_<metric>. Returns the path."""
    rfp = str(tmp_path / ".runs")
    runs = []
    for (dataset, model, setting), pairs in finals.items():
        data = fake_module(dataset, "source", dataset, dataset, [("data_size", 200)])
        net = fake_module(model, "learner", model, model, [("width", 4)])
        training = {"lr": 0.01, "optimizer": "Adam"}
        training.update((name, value) for name, value in zip(names, setting) if value is not None)
        for replicate, pair in enumerate(pairs):
            run_id = len(runs) + 1
            run = fake_run(run_id, f"h{run_id}", (data, net), f"{dataset}(200) | {model}(4)", replicate, seed=run_id)
            run.training = tuple(sorted(training.items()))
            runs.append(run)
            if pair is None:
                write_error(rfp, f"h{run_id}")
                continue
            test = loss_curve(pair[0])
            rows = [(e + 1, v, v, 0.1) for e, v in enumerate(test)]
            if with_validation and pair[1] is not None:
                rows = [row + (val,) for row, val in zip(rows, loss_curve(pair[1]))]
            metrics = None if metric is None else [(EPOCHS, metric, pair[0]), (EPOCHS, f"val_{metric}", pair[1])]
            write_done(rfp, f"h{run_id}", rows,
                       {"nb_params": 41, "epochs": EPOCHS, "duration_s": 1.0, "device": "cpu", "diverged": False},
                       metrics)
    path = str(tmp_path / "mosaic.db")
    process = fake_process(rfp, ("source",), ("learner",), EPOCHS)
    build(SimpleNamespace(ini_path=str(tmp_path / "config.ini"), process=process, runs=tuple(runs)), path)
    return path
