"""Tutorial models: two multi-layer perceptrons with the same number of hidden units.

mlp_brick has `length` hidden layers of `width` units; mlp_funnel spreads the same
length * width units over `length` layers that shrink towards the output.
"""

import torch


def funnel_sizes(length, width):
    """Hidden sizes of a funnel: each layer hands the larger half of its units to the next,
    and the list is read backwards, e.g. length 4, width 2 -> [4, 2, 1, 1]."""
    sizes = [width] * length
    for i in range(length - 1):
        kept = sizes[i] // 2
        sizes[i + 1] += sizes[i] - kept
        sizes[i] = kept
    return sizes[::-1]


class _mlp(torch.nn.Module):
    """A stack of Linear layers, each followed by a sigmoid (the output layer too)."""

    def __init__(self, input_size, output_size, hidden):
        super().__init__()
        sizes = [int(input_size), *hidden, int(output_size)]
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.activation = torch.nn.Sigmoid()

    def forward(self, data, run_info, module_info):
        for layer in self.layers:
            data = self.activation(layer(data))
        return data

    def info(self):
        return {}

    def save_model(self, path):
        torch.save(self.state_dict(), path + ".pt")

    def load_model(self, path):
        self.load_state_dict(torch.load(path + ".pt", weights_only=True))


class mlp_funnel(_mlp):
    def __init__(self, input_size, output_size, length, width):
        super().__init__(input_size, output_size, funnel_sizes(int(length), int(width)))


class mlp_brick(_mlp):
    def __init__(self, input_size, output_size, length, width):
        super().__init__(input_size, output_size, [int(width)] * int(length))
