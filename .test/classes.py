"""The smallest classes Mosaic trains: a dataset of 2-d points labelled by x + y > 1, and a
one-hidden-layer model."""

import torch


class points:
    def __init__(self, size):
        self.size = int(size)

    def prepare(self, data, run_info, module_info):
        generator = torch.Generator().manual_seed(0)
        x = torch.rand(self.size, 2, generator=generator)
        y = (x.sum(dim=1, keepdim=True) > 1).float()
        cut = self.size * 3 // 4
        train = torch.utils.data.TensorDataset(x[:cut], y[:cut])
        test = torch.utils.data.TensorDataset(x[cut:], y[cut:])
        return torch.utils.data.DataLoader(train, batch_size=4), torch.utils.data.DataLoader(test, batch_size=4)

    def info(self):
        return {"input_size": 2, "output_size": 1}


class tiny(torch.nn.Module):
    def __init__(self, input_size, output_size, width):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(int(input_size), int(width)), torch.nn.Tanh(), torch.nn.Linear(int(width), int(output_size))
        )

    def forward(self, data, run_info, module_info):
        return self.net(data)

    def info(self):
        return {}

    def save_model(self, path):
        torch.save(self.state_dict(), path + ".pt")

    def load_model(self, path):
        self.load_state_dict(torch.load(path + ".pt", weights_only=True))
