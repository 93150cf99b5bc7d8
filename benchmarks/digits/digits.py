"""The benchmark's small real-data case (bench_replicates.py): scikit-learn's handwritten digits (load_digits,
1797 images of 8x8 pixels, 10 classes), two small classifiers to compare. Needs scikit-learn (pip install
scikit-learn): Mosaic does not depend on it.

The split is drawn once from `data_seed` (default 0), so that every replicate sees the same images and differs
only by its initialisation and the order of its batches; pixels are scaled to [0, 1].
"""

import numpy as np
import torch


class digits:
    """Data class: the digits as (train_loader, test_loader), `train_prop` of the images for training."""

    def __init__(self, batch_size, train_prop, data_seed=0):
        self.batch_size = int(batch_size)
        self.train_prop = float(train_prop)
        self.data_seed = int(data_seed)

    def prepare(self, data, run_info, module_info):
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        order = np.random.default_rng(self.data_seed).permutation(len(y))
        x = torch.tensor(x[order] / 16.0, dtype=torch.float32)
        y = torch.tensor(y[order], dtype=torch.long)
        cut = int(len(y) * self.train_prop)
        train = torch.utils.data.TensorDataset(x[:cut], y[:cut])
        test = torch.utils.data.TensorDataset(x[cut:], y[cut:])
        return (torch.utils.data.DataLoader(train, batch_size=self.batch_size, shuffle=True),
                torch.utils.data.DataLoader(test, batch_size=256))

    def info(self):
        return {"input_size": 64, "output_size": 10}


class digits_linear(torch.nn.Module):
    """Model class: multinomial logistic regression, one Linear layer (logits for CrossEntropyLoss)."""

    def __init__(self, input_size, output_size):
        super().__init__()
        self.layer = torch.nn.Linear(int(input_size), int(output_size))

    def forward(self, data):
        return self.layer(data)


class digits_mlp(torch.nn.Module):
    """Model class: one hidden layer of `width` ReLU units (logits for CrossEntropyLoss)."""

    def __init__(self, input_size, output_size, width):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(int(input_size), int(width)), torch.nn.ReLU(),
                                          torch.nn.Linear(int(width), int(output_size)))

    def forward(self, data):
        return self.layers(data)
