"""The oracle test's zoo (tests/run/test_oracle.py): one small regression dataset and models that exercise
every way a forward can differ from a pure function of its parameters, buffers, inputs and torch's
random generator. Each model takes 8 features and returns one value per sample."""

import types

import numpy as np
import torch
from torch import nn


class Numbers:
    """8 features, a target mixing them non-linearly; 8 training samples in batches of 1, 4 test samples."""

    def __init__(self, n_train=8, n_test=4, batch_size=1):
        self.n_train, self.n_test, self.batch_size = int(n_train), int(n_test), int(batch_size)

    def prepare(self, data, run_info, module_info):
        g = torch.Generator().manual_seed(7)
        x = torch.randn(self.n_train + self.n_test, 8, generator=g)
        y = torch.tanh(x[:, :4].sum(1, keepdim=True)) + 0.1 * x[:, 4:5] ** 2
        train = torch.utils.data.TensorDataset(x[: self.n_train], y[: self.n_train])
        test = torch.utils.data.TensorDataset(x[self.n_train :], y[self.n_train :])
        return (torch.utils.data.DataLoader(train, batch_size=self.batch_size),
                torch.utils.data.DataLoader(test, batch_size=2))

    def info(self):
        return {"input_size": 8, "output_size": 1}


class CNN(nn.Module):
    """The features as a 2 x 4 image: a convolution, batch norm, ReLU, dropout, a linear head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 2)
        self.norm = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(9, 1)

    def forward(self, x):
        h = self.drop(torch.relu(self.norm(self.conv(x.view(-1, 1, 2, 4)))))
        return self.head(h.flatten(1))


class Recurrent(nn.Module):
    """The features as a sequence of 4 steps of 2: a GRU or an LSTM, the last state to a linear head."""

    def __init__(self, cell="GRU"):
        super().__init__()
        self.rnn = getattr(nn, cell)(2, 5, batch_first=True)
        self.head = nn.Linear(5, 1)

    def forward(self, x):
        out, _ = self.rnn(x.view(-1, 4, 2))
        return self.head(out[:, -1])


class Encoder(nn.Module):
    """A Transformer encoder layer (with dropout) over 4 tokens of 2 features embedded in 4."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(2, 4)
        self.layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.1, batch_first=True)
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        return self.head(self.layer(self.embed(x.view(-1, 4, 2))).mean(1))


class Tied(nn.Module):
    """Weight tying: the second layer is the first one's weight."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 4)
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.b.weight = self.a.weight
        self.out = nn.Linear(4, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.b(torch.tanh(self.a(torch.tanh(self.inp(x)))))))


class TwoHeads(nn.Module):
    """The second head is used on training steps 1, 4, 7...: on the others it gets no gradient."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 4)
        self.head = nn.Linear(4, 1)
        self.extra = nn.Linear(4, 1)
        self.calls = 0

    def forward(self, x):
        h = torch.tanh(self.body(x))
        if self.training:
            self.calls += 1
            if self.calls % 3 == 1:
                return self.head(h) + self.extra(h)
        return self.head(h)


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 6)
        self.out = nn.Linear(6, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.lin(x)))


class InPlaceInput(Small):
    """Changes its input in place."""

    def forward(self, x):
        return super().forward(x.sub_(0.1))


class InPlaceWeight(Small):
    """Shrinks a weight in place under no_grad at every call."""

    def forward(self, x):
        with torch.no_grad():
            self.lin.weight.mul_(0.99)
        return super().forward(x)


class NumpyNoise(Small):
    """Adds noise from a NumPy generator it keeps while training."""

    def __init__(self):
        super().__init__()
        self.rng = np.random.default_rng(3)

    def forward(self, x):
        if self.training:
            x = x + torch.from_numpy(self.rng.normal(0, 0.1, size=tuple(x.shape))).float()
        return super().forward(x)


class WarmUp(Small):
    """Halves its output for the first 20 training steps, counted in a plain object."""

    def __init__(self):
        super().__init__()
        self.state = types.SimpleNamespace(steps=0)

    def forward(self, x):
        if self.training:
            self.state.steps += 1
        return super().forward(x) * (0.5 if self.state.steps <= 20 else 1.0)


class RampLoss(nn.Module):
    """A loss with state: the squared error weighted by a ramp over its first 50 training calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, prediction, target):
        if torch.is_grad_enabled():
            self.calls += 1
        return ((prediction - target) ** 2).mean() * min(1.0, 0.2 + self.calls / 50)
