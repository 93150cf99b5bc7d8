# A class file written the way ml-mosaic 0.0.4's tutorial wrote them: star import of mosaic.lib, tabs,
# parameters read from module_info, the cache helpers called from prepare().
import torch
import numpy as np
from mosaic.lib import *


class dataset_OR():
	def __init__(self):
		...

	def prepare(self, data, run_info, module_info):
		np.random.seed(42)
		print(get_path_file('no_such_file.txt'))
		save_path_file('setup.py')  # the original's debug line: this file need not exist
		print(get_path_file('notes.txt'))
		save_path_file('notes.txt')
		print(get_path_file('notes.txt'))

		data_size = int(module_info['data_size'])
		X = np.array([np.random.randint(2, size=2) for _ in range(data_size)])
		y = np.array([a | b for a, b in X])
		X = torch.tensor(X).float()
		y = torch.tensor(y).float()
		dataset = torch.utils.data.TensorDataset(X, y)
		train_size = int(len(dataset) * float(module_info['train_prop']))
		train_dataset = torch.utils.data.Subset(dataset, range(train_size))
		test_dataset = torch.utils.data.Subset(dataset, range(train_size, len(dataset)))
		self.batch_size = int(module_info['batch_size'])
		train_loader = torch.utils.data.DataLoader(train_dataset, batch_size=self.batch_size, drop_last=True)
		test_loader = torch.utils.data.DataLoader(test_dataset, batch_size=self.batch_size, drop_last=True)
		return train_loader, test_loader

	def info(self):
		return {'batch_size' : self.batch_size, 'input_size' : 2, 'output_size': 1}
