"""The toy experiment's classes (tests/fakes.py make_experiment copies this file as toy.py): a regression
task, y = x . (1, 2, 3) + 0.5, 32 train rows and 16 test rows in batches of 8, and models for it."""

import torch


class Toy:
    def __init__(self, batch_size=8, n_train=32, n_test=16, features=3, shuffle=False):
        self.batch_size, self.n_train, self.n_test = batch_size, n_train, n_test
        self.features, self.shuffle = features, shuffle

    def prepare(self, data, run_info, module_info):
        g = torch.Generator().manual_seed(123)
        x = torch.randn(self.n_train + self.n_test, self.features, generator=g)
        y = x @ torch.arange(1.0, self.features + 1) + 0.5
        train = torch.utils.data.TensorDataset(x[: self.n_train], y[: self.n_train])
        test = torch.utils.data.TensorDataset(x[self.n_train :], y[self.n_train :])
        Toy.targets = y
        return (
            torch.utils.data.DataLoader(train, batch_size=self.batch_size, shuffle=self.shuffle),
            torch.utils.data.DataLoader(test, batch_size=self.batch_size),
        )

    def info(self):
        return {"input_size": self.features, "output_size": 1}


class Affine(torch.nn.Module):
    "A plain torch module: forward(self, x)."
    def __init__(self, input_size, output_size):
        super().__init__()
        self.lin = torch.nn.Linear(input_size, output_size)

    def forward(self, x):
        return self.lin(x)


class DropNet(torch.nn.Module):
    "Uses the torch RNG while training (dropout); can be made to crash after some training batches."
    limit = None
    calls = 0

    def __init__(self, input_size, hidden=6):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(input_size, hidden), torch.nn.Tanh(), torch.nn.Dropout(0.3),
            torch.nn.Linear(hidden, 1),
        )

    def forward(self, x):
        if self.training:
            DropNet.calls += 1
            if DropNet.limit is not None and DropNet.calls > DropNet.limit:
                raise RuntimeError("interrupted")
        return self.net(x)


class Bare:
    "Not an nn.Module: its own parameters(), backward(), save_model() and load_model()."
    limit = None
    calls = 0
    backward_calls = 0

    def __init__(self, input_size):
        self.w = (torch.randn(input_size) * 0.1).requires_grad_()
        self.b = torch.zeros(1, requires_grad=True)

    def parameters(self):
        return [self.w, self.b]

    def forward(self, x):
        if torch.is_grad_enabled():
            Bare.calls += 1
            if Bare.limit is not None and Bare.calls > Bare.limit:
                raise RuntimeError("interrupted")
        return x @ self.w + self.b

    def backward(self, loss):
        Bare.backward_calls += 1

    def save_model(self, path):
        torch.save({"w": self.w.detach().clone(), "b": self.b.detach().clone()}, path + ".pt")

    def load_model(self, path):
        state = torch.load(path + ".pt")
        with torch.no_grad():
            self.w.copy_(state["w"])
            self.b.copy_(state["b"])


class NaNNet(Affine):
    def forward(self, x):
        return self.lin(x) * float("nan")


class Fail(Affine):
    def forward(self, x):
        raise RuntimeError("boom in forward")


class ModeProbe(Affine):
    "Records, for every batch, whether gradients are on and whether the module is in train mode."
    records = []

    def forward(self, x):
        ModeProbe.records.append((torch.is_grad_enabled(), self.training))
        return super().forward(x)


class Detached(Affine):
    "Its output detached from its parameters: nothing would learn."
    def forward(self, x):
        return self.lin(x).detach()


class Own(Affine):
    "Saves itself whole with its own save_model, as the original tutorial did (loading it runs its pickle)."
    def save_model(self, path):
        torch.save(self, path + ".pt")
