"""A run's validation part (mosaic/run/validation.py): carved from the training data by `validation_split`,
the same for every run of a dataset and disjoint from what the run trains on, or the data class's own; its
loss and metrics per epoch in the run's files; and the oracle: a run with a validation split trains exactly
as a plain PyTorch loop trains on the carved training part.

The split reaches a run through its training settings (its spec's "process" dict, which result.json
repeats): the runs here are given them as the spec gives them, through train_run's `description`."""

import pytest
import torch

from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.experiment.spec import description
from mosaic.run.training import Pipeline, train_run
from tests.fakes import DROP_DATA, TOY, make_experiment, model_section, quiet, run_folder, toy

SPLIT = 0.25  # of the toy's 32 train rows: 8 to validate on, 24 to train on


def train_with_split(experiment, run, split=SPLIT):
    """train_run of `run` with `validation_split = split` among its training settings; its loss rows."""
    described = description(experiment, run)
    described["process"]["validation_split"] = split
    train_run(experiment, run, log=quiet, description=described)
    return runfiles.read_losses(run_folder(experiment, run) / runfiles.LOSSES)


def rows_of(loader):
    """Every (x, y) row a loader gives, as a set of tuples."""
    return {(*x.tolist(), float(y)) for xs, ys in loader for x, y in zip(xs, ys)}


def test_the_split_is_the_same_for_every_run_of_a_dataset_and_disjoint_from_the_training_part(tmp_path):
    experiment = toy(tmp_path, data_params=DROP_DATA, multiplicity=3)  # 3 replicates: 3 seeds
    assert len({run.seed for run in experiment.runs}) == 3
    parts = []
    for run in experiment.runs:
        pipeline = Pipeline(run, experiment, "cpu", SPLIT)
        parts.append((rows_of(pipeline.train_loader), rows_of(pipeline.validation_loader)))
        assert pipeline.run_info["train_loader"] is pipeline.train_loader
        assert pipeline.validation_loader.batch_size == pipeline.train_loader.batch_size == 8
    train, validation = parts[0]
    assert all(part == (train, validation) for part in parts)
    assert len(train) == 24 and len(validation) == 8 and not train & validation
    everything = rows_of(Pipeline(experiment.runs[0], experiment, "cpu").train_loader)
    assert train | validation == everything
    # documented: the last 8 of torch.randperm(32) drawn from a generator seeded with [PROCESS] seed
    order = torch.randperm(32, generator=torch.Generator().manual_seed(experiment.process.seed))
    x, y = Pipeline(experiment.runs[0], experiment, "cpu").train_loader.dataset.tensors
    assert validation == {(*x[i].tolist(), float(y[i])) for i in order[24:]}


def test_a_run_with_a_split_writes_its_validation_loss_and_metrics_each_epoch(tmp_path):
    experiment = toy(tmp_path, epochs=3, process="metrics = mae")
    run = experiment.runs[0]
    rows = train_with_split(experiment, run)
    folder = run_folder(experiment, run)
    assert (folder / runfiles.LOSSES).read_text().splitlines()[0] == "epoch\ttrain_loss\ttest_loss\tseconds\tval_loss"
    assert [row[0] for row in rows] == [1, 2, 3] and all(len(row) == 5 for row in rows)
    assert rows[-1][4] < rows[0][4]  # it learns, on data it never trained on
    names = {(epoch, name) for epoch, name, _ in runfiles.read_metrics(folder / runfiles.METRICS)}
    assert names == {(epoch, name) for epoch in (1, 2, 3) for name in ("mae", "val_mae")}


def test_a_run_without_validation_keeps_four_columns(tmp_path):
    experiment = toy(tmp_path, epochs=2)
    train_run(experiment, experiment.runs[0], log=quiet)
    lines = (run_folder(experiment, experiment.runs[0]) / runfiles.LOSSES).read_text().splitlines()
    assert lines[0] == runfiles.LOSS_HEADER and all(line.count("\t") == 3 for line in lines)


THREE = TOY + """

class ThreeLoaders(Toy):
    "The toy's loaders, its test loader also given as the validation loader."

    def prepare(self, data, run_info, module_info):
        train, test = super().prepare(data, run_info, module_info)
        return train, test, test
"""


def test_a_data_class_returning_three_loaders_validates_on_its_own(tmp_path):
    data = "\n[toy]\ntype = data\nclass = ThreeLoaders\npath_to_class = three.py\n"
    experiment = make_experiment(tmp_path, data + model_section("Affine"), epochs=3, files={"three.py": THREE})
    run = experiment.runs[0]
    rows = train_with_split(experiment, run)  # its own validation loader: nothing is carved
    assert [row[4] for row in rows] == [row[2] for row in rows]
    pipeline = Pipeline(run, experiment, "cpu", SPLIT)
    assert len(pipeline.train_loader.dataset) == 32 and pipeline.validation_loader is pipeline.test_loader


@pytest.mark.parametrize("split, why", [
    (1.5, "validation_split = 1.5: expected a fraction between 0 and 1"),
    ("most", "validation_split = 'most': expected a fraction between 0 and 1"),
    (0.01, "validation_split = 0.01 of 32 training samples leaves 32 to train on and 0 to validate on; each needs"
           " one at least"),
])
def test_a_split_that_cannot_be_carved_is_one_line(tmp_path, split, why):
    experiment = toy(tmp_path)
    with pytest.raises(MosaicError) as caught:
        train_with_split(experiment, experiment.runs[0], split)
    assert str(caught.value) == f"run 1: {why}"


def test_a_loader_without_a_dataset_cannot_be_split(tmp_path):
    lists = TOY + "\n\nclass Lists(Toy):\n    def prepare(self, data, run_info, module_info):\n" \
            "        return [list(loader) for loader in super().prepare(data, run_info, module_info)]\n"
    data = "\n[toy]\ntype = data\nclass = Lists\npath_to_class = lists.py\n"
    experiment = make_experiment(tmp_path, data + model_section("Affine"), files={"lists.py": lists})
    with pytest.raises(MosaicError, match=r"^run 1: validation_split needs a torch DataLoader .* return"
                                          r" \(train_loader, validation_loader, test_loader\) from prepare instead$"):
        train_with_split(experiment, experiment.runs[0])


def plain_loop(experiment, run, epochs):
    """The run trained by a plain PyTorch loop on the carved training part, as tests/run/oracle.py trains one:
    [(epoch, train_loss, test_loss, val_loss)]."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("plain_toy", run_folder(experiment, run).parent.parent / "toy.py")
    toy_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy_module)
    Affine, Toy = toy_module.Affine, toy_module.Toy
    torch.manual_seed(run.seed)
    data = Toy(shuffle=True)
    train, test = data.prepare(None, {}, {})
    x, y = train.dataset.tensors
    order = torch.randperm(32, generator=torch.Generator().manual_seed(experiment.process.seed))
    kept, held = order[:24], order[24:]
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[kept], y[kept]), batch_size=8, shuffle=True)
    # its own generator: reading it draws nothing from the one the training rows are shuffled with
    validation = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[held], y[held]), batch_size=8,
                                             generator=torch.Generator())
    model = Affine(3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=experiment.process.lr, fused=True)
    loss_fn = torch.nn.MSELoss()

    def epoch(loader, training):
        total, count = 0.0, 0
        model.train(training)
        for inputs, targets in loader:
            if training:
                optimizer.zero_grad()
            loss = loss_fn(model(inputs).squeeze(1), targets)  # as Mosaic squeezes a (8, 1) prediction
            if training:
                loss.backward()
                optimizer.step()
            total = total + loss.detach() * len(targets)
            count += len(targets)
        return float(total / count)

    rows = []
    for number in range(1, epochs + 1):
        train_loss = epoch(train, True)
        with torch.no_grad():
            rows.append((number, train_loss, epoch(test, False), epoch(validation, False)))
    return rows


def test_oracle_a_run_with_a_split_trains_as_a_plain_loop_on_the_carved_part(tmp_path):
    """Shuffled training rows: each epoch draws from torch's generator, which the validation pass must
    leave alone (its loader has its own generator)."""
    experiment = toy(tmp_path, epochs=6, data_params=DROP_DATA)
    run = experiment.runs[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = train_with_split(experiment, run)
        expected = plain_loop(experiment, run, 6)
    finally:
        torch.set_num_threads(threads)
    assert [(e, train, test, val) for e, train, test, _, val in rows] == expected


def test_the_ini_s_validation_split_reaches_the_run(tmp_path):
    """[PROCESS] validation_split = 0.25: among the run's training settings (its spec), so train_run carves."""
    experiment = toy(tmp_path, epochs=2, process="validation_split = 0.25")
    run = experiment.runs[0]
    result = train_run(experiment, run, log=quiet)
    assert result["process"]["validation_split"] == 0.25
    rows = runfiles.read_losses(run_folder(experiment, run) / runfiles.LOSSES)
    assert [len(row) for row in rows] == [5, 5]


def test_a_continued_run_keeps_its_validation_losses(tmp_path):
    """A run continued from its final model (mosaic_rerun -epochs) equals one trained in one go, validation
    losses included."""
    import shutil

    settings = dict(epochs=4, data_params=DROP_DATA, process="validation_split = 0.25\nmetrics = mae")
    clean = toy(tmp_path / "clean", **settings)
    train_run(clean, clean.runs[0], log=quiet)
    experiment = toy(tmp_path / "continued", **settings)
    run = experiment.runs[0]
    folder = run_folder(experiment, run)
    train_run(experiment, run, target_epochs=2, log=quiet)
    shutil.copy(folder / runfiles.MODEL, folder / runfiles.CHECKPOINT)
    train_run(experiment, run, target_epochs=4, log=quiet)
    want = run_folder(clean, clean.runs[0])
    got_losses = runfiles.read_losses(folder / runfiles.LOSSES)
    want_losses = runfiles.read_losses(want / runfiles.LOSSES)
    assert len(got_losses) == 4
    assert [(*row[:3], row[4]) for row in got_losses] == [(*row[:3], row[4]) for row in want_losses]  # seconds aside
    metrics = runfiles.read_metrics(folder / runfiles.METRICS)
    assert len(metrics) == 8 and metrics == runfiles.read_metrics(want / runfiles.METRICS)
