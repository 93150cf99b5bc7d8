"""A run's validation data: the data class's own validation loader, or a part carved from the training data.

`[PROCESS] validation_split = 0.2` (or in a class section) carves the last round(0.2 × n) samples of a fixed
permutation of the n training samples into the validation part: the permutation is torch.randperm(n) drawn
from a generator seeded with the data seed ([PROCESS] seed), so every run of a dataset gets the same part,
whatever its model, training settings or replicate. The training part keeps the train loader's batch size,
shuffling and collation; the validation part is read with the same batch size, unshuffled, through its own
random generator: evaluating it draws nothing from the generator training shuffles with, so a run with
validation trains exactly as a plain loop trains on the training part.
"""

from mosaic.errors import MosaicError


def validation_split_of(settings):
    """The fraction `settings` (a run's training settings, {name: value}) asks to carve, None when none."""
    return settings.get("validation_split") or None


def carve(loader, fraction, seed, where):
    """(train loader, validation loader) carved from the DataLoader `loader` (see the module docstring);
    `where` names the run in messages."""
    import torch
    from torch.utils import data

    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise MosaicError(f"{where}: validation_split = {fraction!r}: expected a fraction between 0 and 1")
    if not (isinstance(loader, data.DataLoader) and type(loader.sampler) in (data.RandomSampler,
                                                                             data.SequentialSampler)
            and loader.batch_size is not None):
        raise MosaicError(f"{where}: validation_split needs a torch DataLoader with a batch_size and plain or"
                          " shuffled sampling as the train loader; return (train_loader, validation_loader,"
                          " test_loader) from prepare instead")
    try:
        size = len(loader.dataset)
    except TypeError:
        raise MosaicError(f"{where}: validation_split needs a train dataset with a length") from None
    held = round(fraction * size)
    if not 0 < held < size:
        raise MosaicError(f"{where}: validation_split = {fraction} of {size} training samples leaves"
                          f" {size - held} to train on and {held} to validate on; each needs one at least")
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    train_part, validation_part = subset(loader.dataset, order[: size - held]), subset(loader.dataset,
                                                                                       order[size - held:])
    shuffled = isinstance(loader.sampler, data.RandomSampler)
    common = dict(batch_size=loader.batch_size, num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                  pin_memory=loader.pin_memory, worker_init_fn=loader.worker_init_fn)
    train = data.DataLoader(train_part, shuffle=shuffled, drop_last=loader.drop_last,
                            generator=loader.sampler.generator if shuffled else loader.generator, **common)
    validation = data.DataLoader(validation_part, shuffle=False, generator=torch.Generator().manual_seed(seed),
                                 **common)
    return train, validation


def subset(dataset, indices):
    """The samples `indices` of `dataset`: a TensorDataset of them when it is one (its batches are then kept
    on the device: mosaic/run/batches.py), else a Subset."""
    from torch.utils import data

    if type(dataset) is data.TensorDataset:
        return data.TensorDataset(*(tensor[indices] for tensor in dataset.tensors))
    return data.Subset(dataset, indices.tolist())
