"""The batches of an epoch: read from the loader as a plain loop reads them, or collated once and kept where
that gives the same batches (see batch_source)."""

import torch

from mosaic.errors import MosaicError


def to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(item, device) for item in batch)
    return batch


def batch_source(loader, device, limit=None):
    """A function giving the batches of one epoch.

    A DataLoader reading a TensorDataset in order yields the same batches every epoch: they are
    collated and moved to the device once, which removes most of the per-step overhead. The result is
    the plain loop's: each epoch still makes the loader's iterator (it draws a seed from the random
    generator), and batches that a step changed in place are read afresh from the loader. Only the
    plain case qualifies: a TensorDataset subclass, a custom batch_sampler or collate_fn may give
    different batches each epoch (augmentation, random batching). The cache is bounded: a dataset
    larger than `limit` bytes (None: default_cache_limit) is streamed batch by batch instead.
    """
    data = torch.utils.data
    fixed = (
        isinstance(loader, data.DataLoader)
        and type(loader.dataset) is data.TensorDataset
        and type(loader.batch_sampler) is data.BatchSampler
        and type(loader.batch_sampler.sampler) is data.SequentialSampler
        and loader.collate_fn is data.default_collate
        and loader.num_workers == 0
    )
    if fixed:
        limit = default_cache_limit(device) if limit is None else limit
        fixed = sum(t.numel() * t.element_size() for t in loader.dataset.tensors) <= limit
    if not fixed:
        return lambda: (to_device(checked_pair(batch), device) for batch in loader)
    generator = loader.generator or torch.default_generator
    state = generator.get_state()
    batches = [to_device(checked_pair(batch), device) for batch in loader]
    generator.set_state(state)  # as if the loader had not been read yet
    if not batches:
        raise MosaicError("a data loader is empty")
    versions = [(tensor, tensor._version) for batch in batches for tensor in batch if isinstance(tensor, torch.Tensor)]
    cached = [True]

    def epoch():
        """The cached batches while no step changed them in place (a forward that writes into its input
        would see its own writes again): from then on the loader's fresh batches, as a plain loop reads them.
        Either way the loader's iterator is made, which draws its seed from the random generator."""
        if cached[0] and any(tensor._version != version for tensor, version in versions):
            cached[0] = False
        if not cached[0]:
            return (to_device(checked_pair(batch), device) for batch in loader)
        iter(loader)
        return batches

    return epoch


def checked_pair(batch):
    """A batch must be (inputs, targets); say so plainly rather than 'too many values to unpack'."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        size = f"{len(batch)} items" if isinstance(batch, (tuple, list)) else f"a {type(batch).__name__}"
        raise MosaicError(f"a data loader gave a batch of {size}; each batch must be (inputs, targets)")
    return batch


def default_cache_limit(device):
    """A quarter of the memory free on `device` (the train and test caches share it with the model)."""
    if str(device).startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free // 4
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 4
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 30
