"""Tests for mosaic.run.batches: the batches of an epoch, collated once and kept where a plain loop would read
the same ones, streamed otherwise."""

import pytest
import torch

from mosaic.errors import MosaicError
from mosaic.run.training import batch_source, train_run
from tests.fakes import TOY_DATA, losses, make_experiment, model_section


def test_plain_tensor_loader_batches_are_made_once():
    data = torch.utils.data
    loader = data.DataLoader(data.TensorDataset(torch.arange(8.0), torch.arange(8.0)), batch_size=4)
    batches = batch_source(loader, "cpu")
    first, second = list(batches()), list(batches())
    assert len(first) == 2
    assert first[0][0] is second[0][0]
    assert torch.equal(first[1][0], torch.tensor([4.0, 5.0, 6.0, 7.0]))


def test_random_collate_and_batch_samplers_give_new_batches_each_epoch():
    data = torch.utils.data
    dataset = data.TensorDataset(torch.zeros(8, 2), torch.zeros(8))

    def noisy(items):
        x, y = data.default_collate(items)
        return x + torch.randn(x.shape), y

    class Augmented(data.TensorDataset):
        def __getitem__(self, index):
            x, y = super().__getitem__(index)
            return x + torch.randn(x.shape), y

    class Shuffled(data.Sampler):
        def __iter__(self):
            return iter(torch.randperm(8).view(2, 4).tolist())

        def __len__(self):
            return 2

    torch.manual_seed(0)
    loaders = {
        "collate_fn": data.DataLoader(dataset, batch_size=4, collate_fn=noisy),
        "dataset subclass": data.DataLoader(Augmented(torch.zeros(8, 2), torch.zeros(8)), batch_size=4),
    }
    for name, loader in loaders.items():
        batches = batch_source(loader, "cpu")
        assert not torch.equal(list(batches())[0][0], list(batches())[0][0]), name
    indexed = data.TensorDataset(torch.arange(8.0), torch.arange(8.0))
    batches = batch_source(data.DataLoader(indexed, batch_sampler=Shuffled()), "cpu")
    orders = {tuple(torch.cat([x for x, _ in batches()]).tolist()) for _ in range(5)}
    assert len(orders) > 1


def test_a_dataset_above_the_cache_limit_is_streamed_batch_by_batch():
    data = torch.utils.data
    loader = data.DataLoader(data.TensorDataset(torch.arange(8.0), torch.arange(8.0)), batch_size=4)
    size = 2 * 8 * 4  # two tensors of 8 float32
    cached = batch_source(loader, "cpu", limit=size)
    streamed = batch_source(loader, "cpu", limit=size - 1)
    assert list(cached())[0][0] is list(cached())[0][0]
    first, second = list(streamed()), list(streamed())
    assert first[0][0] is not second[0][0]
    assert [torch.equal(a[0], b[0]) for a, b in zip(first, list(cached()))] == [True, True]


def test_streamed_and_cached_batches_train_alike(tmp_path):
    cached = make_experiment(tmp_path / "cached", TOY_DATA + model_section("Affine"))
    streamed = make_experiment(tmp_path / "streamed", "batch_cache = 0\n" + TOY_DATA + model_section("Affine"))
    assert (cached.monitor.batch_cache_limit, streamed.monitor.batch_cache_limit) == (None, 0)
    for experiment in (cached, streamed):
        train_run(experiment, experiment.runs[0], log=lambda line: None)
    assert losses(cached, cached.runs[0]) == losses(streamed, streamed.runs[0])


def test_batch_cache_takes_a_size_or_auto(tmp_path):
    experiment = make_experiment(tmp_path, "batch_cache = 2G\n" + TOY_DATA + model_section("Affine"))
    assert experiment.monitor.batch_cache_limit == 2_000_000_000
    with pytest.raises(MosaicError, match="batch_cache"):
        make_experiment(tmp_path, "batch_cache = lots\n" + TOY_DATA + model_section("Affine"))


def test_empty_train_loader_is_a_mosaic_error():
    data = torch.utils.data
    loader = data.DataLoader(data.TensorDataset(torch.zeros(3), torch.zeros(3)), batch_size=4, drop_last=True)
    with pytest.raises(MosaicError, match="empty"):
        batch_source(loader, "cpu")
