"""Tutorial datasets: the logical gates OR and AND on random bit pairs.

The data are drawn from a generator seeded with `data_seed` (default 42), so that every replicate
of a pipeline sees the same data and differs only by its initialisation.
"""

import numpy as np
import torch


class _gate:
    """Common part of the gate datasets; subclasses define `target(a, b)`."""

    def __init__(self, batch_size, data_size, train_prop, data_seed=42):
        self.batch_size = int(batch_size)
        self.data_size = int(data_size)
        self.train_prop = float(train_prop)
        self.data_seed = int(data_seed)

    def prepare(self, data, run_info, module_info):
        rng = np.random.default_rng(self.data_seed)
        x = rng.integers(0, 2, size=(self.data_size, 2))
        y = self.target(x[:, 0], x[:, 1])
        x = torch.tensor(x).float()
        y = torch.tensor(y).float()
        cut = int(self.data_size * self.train_prop)
        train = torch.utils.data.TensorDataset(x[:cut], y[:cut])
        test = torch.utils.data.TensorDataset(x[cut:], y[cut:])
        train_loader = torch.utils.data.DataLoader(train, batch_size=self.batch_size, drop_last=True)
        test_loader = torch.utils.data.DataLoader(test, batch_size=self.batch_size, drop_last=True)
        return train_loader, test_loader

    def info(self):
        return {"batch_size": self.batch_size, "input_size": 2, "output_size": 1}


class dataset_OR(_gate):
    @staticmethod
    def target(a, b):
        return a | b


class dataset_AND(_gate):
    @staticmethod
    def target(a, b):
        return a & b
