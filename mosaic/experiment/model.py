"""The data model of an experiment: modules, runs, the [PROCESS] and [MONITOR] settings. Standard library only."""

from dataclasses import dataclass, field


def format_value(value):
    """Render a typed value the way display() and key templates show it: 0.8, 1e-05, True, relu."""
    return str(value)


@dataclass(frozen=True)
class Module:
    """One variant of one class section: a class and its parameter values."""

    section: str
    type: str
    class_name: str
    path: str
    path_in_ini: str
    key_template: str
    key: str
    params: tuple
    training: tuple = ()  # training settings the section overrides: ((name, (value, ...)), ...)

    def display(self):
        """Class name and parameter values in ini order: 'mlp_funnel(4,3)'."""
        return f"{self.class_name}({','.join(format_value(v) for _, v in self.params)})"

    def param_dict(self):
        """Parameters as a dict, name -> typed value."""
        return dict(self.params)


@dataclass(frozen=True)
class Run:
    """One training run: a pipeline of modules and a replicate index."""

    run_id: int
    run_hash: str
    replicate: int
    seed: int
    modules: tuple
    n_data: int
    pipeline: str
    dataset_key: str
    model_key: str
    training: tuple = ()  # its training settings, sorted: (("lr", 0.01), ("optimizer", "Adam"), ...)

    @property
    def data_modules(self):
        return self.modules[: self.n_data]

    @property
    def model_modules(self):
        return self.modules[self.n_data :]


@dataclass(frozen=True)
class Process:
    """The [PROCESS] section."""

    lr: float
    epochs: int
    data_scheme: tuple
    pipeline_scheme: tuple
    run_files_path: str
    loss_function: str = "MSELoss"
    class_loss_function: str | None = None
    path_to_class_loss_function: str | None = None
    optimizer: str = "Adam"
    seed: int = 0
    checkpoint_every: int | None = None  # None: every tenth of the epochs; 0: never
    deterministic: bool = True  # on a GPU: deterministic algorithms, so that a rerun gives the same losses
    traced_step: bool = False  # opt-in: the training step traced once and replayed (CPU; mosaic/run/traced.py)
    extra: tuple = ()
    training: tuple = ()  # the training settings given, each with its values: ((name, (value, ...)), ...)


# The [PROCESS] values that change what a run computes: its content hash and its spec hold them (with the
# loss class's file), so that changing one retrains the run (mosaic/experiment/expand.py, spec.py).
PROCESS_IDENTITY_FIELDS = ("lr", "loss_function", "class_loss_function", "optimizer", "seed")
# The optimizer arguments a run may set ([PROCESS] or a class section): passed to the torch optimizer, beta1 and
# beta2 as its betas (mosaic/experiment/training.py reads them, mosaic/run trains with them)
OPTIMIZER_ARGS = (
    "weight_decay", "momentum", "beta1", "beta2", "eps", "nesterov", "amsgrad", "dampening", "alpha", "centered", "rho",
    "lr_decay", "momentum_decay", "initial_accumulator_value", "maximize",
)
# A run's training settings: lr and optimizer (always), the optimizer arguments, a learning-rate schedule (with
# its arguments as scheduler_<argument>), gradient clipping and the validation part of the training data
TRAINING_SETTINGS = ("lr", "optimizer", *OPTIMIZER_ARGS, "scheduler", "clip_grad_norm", "validation_split")
SCHEDULER_PREFIX = "scheduler_"

# The [PROCESS] values that are parameters of every run: the database's PROCESS rows, matched by -param
# (mosaic/results/selection.py), in this order, then the keys of `extra`; lr and optimizer are each run's own
# (Run.training), written with its other training settings.
PROCESS_PARAMETER_FIELDS = (
    "lr", "epochs", "loss_function", "class_loss_function", "optimizer", "seed", "data_scheme", "pipeline_scheme"
)


@dataclass(frozen=True)
class Monitor:
    """The [MONITOR] section."""

    need_gpu: bool
    gpu_available: tuple | None
    nb_processus: int | None
    multiplicity: int
    cache_database_path: str
    cache_size: int
    extra: tuple = ()
    runs_per_gpu: int = 1  # runs sharing one GPU (each run still initialises CUDA itself)
    batch_cache_limit: int | None = None  # bytes of batches kept on the device; None: from free memory
    adaptive: bool = False  # multiplicity = auto: multiplicity is min_multiplicity, rounds add replicates
    max_multiplicity: int | None = None  # with adaptive: the most replicates of a pipeline
    max_runs: int | None = None  # with adaptive: the most runs in all (None: no budget but max_multiplicity)


@dataclass(frozen=True)
class Experiment:
    """A loaded ini file: its settings and its runs in order."""

    ini_path: str
    process: Process
    monitor: Monitor
    runs: tuple
    _by_hash: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_by_hash", {run.run_hash: run for run in self.runs})

    def run_by_hash(self, run_hash):
        """The run with this content id; KeyError if there is none."""
        return self._by_hash[run_hash]
