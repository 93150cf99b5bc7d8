# Models written the way ml-mosaic 0.0.4's tutorial wrote them (whole-object torch.save included).
import torch


class mlp_brick(torch.nn.Module):
	def __init__(self, input_size, output_size, length, width):
		super(mlp_brick, self).__init__()
		sizes = [int(input_size)] + [int(width)] * int(length) + [int(output_size)]
		self.layers = torch.nn.ModuleList()
		for i in range(len(sizes) - 1):
			self.layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
		self.activation = torch.nn.Sigmoid()

	def forward(self, data, run_info, module_info):
		for layer in self.layers:
			data = self.activation(layer(data))
		return data

	def info(self):
		return {}

	def save_model(self, path):
		path += '.pt'
		torch.save(self, path)

	def load_model(self, path):
		path += '.pt'
		self = torch.load(path)


class mlp_funnel(torch.nn.Module):
	def __init__(self, input_size, output_size, length, width):
		super(mlp_funnel, self).__init__()
		sizes = [int(width)] * int(length)
		for i in range(len(sizes) - 1):
			kept = sizes[i] // 2
			sizes[i + 1] += sizes[i] - kept
			sizes[i] = kept
		sizes = [int(input_size)] + sizes[::-1] + [int(output_size)]
		self.layers = torch.nn.ModuleList()
		for i in range(len(sizes) - 1):
			self.layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
		self.activation = torch.nn.Sigmoid()

	def forward(self, data, run_info, module_info):
		for layer in self.layers:
			data = self.activation(layer(data))
		return data

	def info(self):
		return {}

	def save_model(self, path):
		torch.save(self, path + '.pt')

	def load_model(self, path):
		self = torch.load(path + '.pt')
