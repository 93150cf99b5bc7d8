"""Training settings as grid dimensions (issue 23.1): lists in [PROCESS] and class-section overrides expand
the runs; each run's settings are its identity, its spec and its params rows; an optimizer or scheduler
argument the chosen class does not take is a one-line error."""

import hashlib

import pytest

from mosaic.errors import ConfigError
from mosaic.experiment.spec import Fingerprints, experiment_of, identity, run_context, run_spec, run_training
from mosaic.experiment.torchnames import OPTIMIZER_ARGUMENTS, SCHEDULERS
from mosaic.results.selection import module_rows, process_rows, select_runs
from tests.fakes import FUNNEL, ROOT, TUTORIAL, load_ini, mlp_ini
from tests.fakes import ini_error as full_ini_error


def ini_error(folder, text):
    """The error's line, the ini named as config.ini."""
    return full_ini_error(folder, text).replace(f"{folder}/", "")


def hashes(experiment):
    return [(run.run_hash, run.seed) for run in experiment.runs]


def test_the_tutorial_runs_keep_their_hashes_seeds_and_specs():
    """Known values from before training settings could vary: no finished run of an old ini is retrained."""
    from mosaic.experiment import load_experiment

    experiment = load_experiment(ROOT / "share" / "config.ini")
    text = " ".join(f"{run_hash}:{seed}" for run_hash, seed in hashes(experiment))
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == "29a0e5ad4a59bbb2"
    first = experiment.runs[0]
    assert (first.run_hash, first.seed) == ("4cc9a22c9e629328", 1616519899)
    spec = run_spec(experiment, first, Fingerprints())
    assert spec["process"] == {"lr": 0.01, "loss_function": "MSELoss", "class_loss_function": None,
                               "optimizer": "Adam", "seed": 0}
    assert first.training == (("lr", 0.01), ("optimizer", "Adam"))


def test_the_stub_tutorial_keeps_its_hashes_and_spec_identities(tmp_path):
    experiment = load_ini(tmp_path, TUTORIAL)
    first = experiment.runs[0]
    assert (first.run_hash, first.seed, first.pipeline) == ("4cc9a22c9e629328", 1616519899,
                                                            "dataset_OR(1,200,0.8) | mlp_funnel(4,2)")
    assert identity(run_spec(experiment, first, Fingerprints())) == "ceccb59953646a06"


def test_lists_of_lr_and_optimizer_expand_each_pipeline(tmp_path):
    single = load_ini(tmp_path / "single", mlp_ini("width = 2"))
    text = mlp_ini("width = 2, 3", process_extra="optimizer = Adam, SGD\n")
    text = text.replace("lr = 1e-2", "lr = {1e-3..1e-2:log2}")
    experiment = load_ini(tmp_path / "grid", text)
    assert len(experiment.runs) == 2 * 2 * 2
    assert [run.training for run in experiment.runs[:4]] == [
        (("lr", 0.001), ("optimizer", "Adam")), (("lr", 0.001), ("optimizer", "SGD")),
        (("lr", 0.01), ("optimizer", "Adam")), (("lr", 0.01), ("optimizer", "SGD")),
    ]
    assert experiment.runs[0].pipeline == "dataset_OR(1,200,0.8) | mlp_funnel(2) | lr=0.001, optimizer=Adam"
    assert experiment.runs[4].pipeline == "dataset_OR(1,200,0.8) | mlp_funnel(3) | lr=0.001, optimizer=Adam"
    # the run at the old single setting is the old run
    assert hashes(single)[0] in hashes(experiment)
    assert len(set(hashes(experiment))) == 8


def test_extra_settings_enter_the_hash_the_spec_and_the_job(tmp_path):
    plain = load_ini(tmp_path / "plain", mlp_ini("width = 2"))
    extra = "optimizer = SGD\nmomentum = 0.9\nnesterov = True\nscheduler = MultiStepLR\nscheduler_milestones = 10 20\n"
    extra += "clip_grad_norm = 1\nvalidation_split = 0.2\n"
    experiment = load_ini(tmp_path / "extra", mlp_ini("width = 2", process_extra=extra))
    run = experiment.runs[0]
    assert run.run_hash != plain.runs[0].run_hash
    spec = run_spec(experiment, run, Fingerprints())
    settings = {"lr": 0.01, "optimizer": "SGD", "momentum": 0.9, "nesterov": True, "scheduler": "MultiStepLR",
                "scheduler_milestones": (10, 20), "clip_grad_norm": 1.0, "validation_split": 0.2}
    assert spec["process"] == {"loss_function": "MSELoss", "class_loss_function": None, "seed": 0, **settings}
    assert run_training(spec) == settings
    job_experiment, job_run = experiment_of(spec, run_context(experiment, run))
    assert job_run.training == tuple(sorted(settings.items())) == run.training
    assert (job_experiment.process.lr, job_experiment.process.optimizer) == (0.01, "SGD")
    assert run.pipeline == "dataset_OR(1,200,0.8) | mlp_funnel(2)"  # nothing varies: nothing shown


def test_a_json_round_trip_of_the_spec_gives_the_same_settings(tmp_path):
    import json

    extra = "scheduler = MultiStepLR\nscheduler_milestones = 10 20\nweight_decay = 0\n"
    experiment = load_ini(tmp_path, mlp_ini("width = 2", process_extra=extra))
    spec = json.loads(json.dumps(run_spec(experiment, experiment.runs[0], Fingerprints())))
    assert run_training(spec)["scheduler_milestones"] == (10, 20)
    assert run_training(spec)["weight_decay"] == 0.0


def test_a_class_section_overrides_the_settings_of_its_runs(tmp_path):
    funnel = FUNNEL.replace("width = {2-4}", "width = 2\nlr = 1e-3, 1e-1\nweight_decay = 0.01")
    brick = FUNNEL.replace("mlp_funnel", "mlp_brick").replace("width = {2-4}", "width = 2")
    text = mlp_ini("width = 2").split("[mlp]")[0] + funnel + "\n" + brick
    experiment = load_ini(tmp_path, text)
    assert [run.training for run in experiment.runs] == [
        (("lr", 0.001), ("optimizer", "Adam"), ("weight_decay", 0.01)),
        (("lr", 0.1), ("optimizer", "Adam"), ("weight_decay", 0.01)),
        (("lr", 0.01), ("optimizer", "Adam")),
    ]
    assert experiment.runs[0].modules[1].params == (("length", 4), ("width", 2))  # not the class's parameters
    assert experiment.runs[2].pipeline == "dataset_OR(1,200,0.8) | mlp_brick(4,2) | lr=0.01"
    assert experiment.runs[0].pipeline.endswith("| lr=0.001, weight_decay=0.01")


def test_two_sections_of_one_pipeline_setting_one_name_is_an_error(tmp_path):
    text = mlp_ini("width = 2\nlr = 0.1").replace("train_prop = 0.8", "train_prop = 0.8\nlr = 0.2")
    assert ini_error(tmp_path, text) == ("config.ini: [dataset_OR] and [mlp] both set lr for the runs that use"
                                         " both")


def test_sections_with_the_same_class_and_other_settings_are_distinct_variants(tmp_path):
    funnel = FUNNEL.replace("width = {2-4}", "width = 2\nlr = 0.1")
    other = funnel.replace("[mlp_funnel]", "[mlp_funnel_slow]").replace("lr = 0.1", "lr = 0.001")
    experiment = load_ini(tmp_path, mlp_ini("width = 2").split("[mlp]")[0] + funnel + "\n" + other)
    assert [dict(run.training)["lr"] for run in experiment.runs] == [0.1, 0.001]


@pytest.mark.parametrize("extra, message", [
    ("momentum = 0.9\n", "config.ini: [PROCESS] momentum: Adam takes no argument 'momentum' (it takes: weight_decay,"
                         " beta1, beta2, eps, amsgrad, maximize)"),
    ("optimizer = SGD\nbeta1 = 0.8\n", "config.ini: [PROCESS] beta1: SGD takes no argument 'betas' (it takes:"
                                       " weight_decay, momentum, nesterov, dampening, maximize)"),
    ("scheduler = StepLR\nscheduler_T_max = 4\n", "config.ini: [PROCESS] scheduler_T_max: StepLR takes no argument"
                                                  " 'T_max' (it takes: step_size, gamma)"),
    ("scheduler = MultiStepLR\n", "config.ini: [PROCESS] scheduler: scheduler = MultiStepLR needs"
                                 " scheduler_milestones"),
    ("scheduler_gamma = 0.5\n", "config.ini: [PROCESS] scheduler_gamma: a scheduler argument without a scheduler"
                                " (add scheduler = StepLR, for instance)"),
    ("scheduler = StepLr\n", "config.ini: [PROCESS] scheduler: torch.optim.lr_scheduler (of those Mosaic steps)"
                             " has no 'StepLr' (did you mean 'StepLR'?)"),
    ("optimizer = Adam, Adm\n", "config.ini: [PROCESS] optimizer: torch.optim has no 'Adm' (did you mean 'Adam'?)"),
    ("weight_decay = -1\n", "config.ini: [PROCESS] weight_decay: must be a finite number >= 0, got -1.0"),
    ("nesterov = yes\n", "config.ini: [PROCESS] nesterov: not a boolean (True/False): 'yes'"),
    ("validation_split = 1.5\n", "config.ini: [PROCESS] validation_split: must be between 0 and 1 (the share of the"
                                 " training data), got 1.5"),
])
def test_bad_training_settings_are_one_line_errors(tmp_path, extra, message):
    assert ini_error(tmp_path, mlp_ini("width = 2", process_extra=extra)) == message


def test_an_argument_checked_against_each_optimizer_of_the_grid(tmp_path):
    text = mlp_ini("width = 2\nmomentum = 0.9", process_extra="optimizer = SGD, Adam\n")
    assert ini_error(tmp_path, text) == ("config.ini: [mlp] momentum: Adam takes no argument 'momentum' (it takes:"
                                         " weight_decay, beta1, beta2, eps, amsgrad, maximize)")


def test_each_run_has_its_own_params_rows_and_param_selects_them(tmp_path):
    experiment = load_ini(tmp_path, mlp_ini("width = 2", process_extra="lr = 0.1\nweight_decay = 0.1, 0.2\n"
                                            ).replace("lr = 1e-2\n", ""))
    first, second = experiment.runs
    assert [row for row in module_rows(second) if row[0] == "PROCESS"] == [
        ("PROCESS", "lr", 0.1), ("PROCESS", "optimizer", "Adam"), ("PROCESS", "weight_decay", 0.2)]
    assert {name for _, name, _ in process_rows(experiment.process)}.isdisjoint({"lr", "optimizer"})
    assert select_runs(experiment, param=("weight_decay", "0.2")) == [second]
    assert select_runs(experiment, param=("PROCESS.lr", "0.1")) == list(experiment.runs)
    assert first.pipeline.endswith("| weight_decay=0.1")


def test_the_static_tables_match_the_installed_torch():
    from mosaic.experiment.torchnames import installed_arguments

    optimizers, schedulers = installed_arguments()
    assert optimizers == OPTIMIZER_ARGUMENTS
    assert schedulers == SCHEDULERS


def test_the_required_scheduler_arguments_are_those_torch_requires_and_mosaic_does_not_fill():
    import inspect

    import torch

    from mosaic.experiment.torchnames import SCHEDULER_REQUIRED

    filled = {"CosineAnnealingLR": {"T_max"}, "OneCycleLR": {"max_lr"}, "CyclicLR": {"base_lr"}}
    for name in SCHEDULERS:
        parameters = inspect.signature(getattr(torch.optim.lr_scheduler, name)).parameters
        required = {arg for arg, p in parameters.items() if p.default is inspect.Parameter.empty}
        required -= {"self", "optimizer"}
        assert set(SCHEDULER_REQUIRED.get(name, ())) == required - filled.get(name, set()), name


def test_a_grid_too_big_is_refused_before_expanding(tmp_path):
    text = mlp_ini("width = 2").replace("lr = 1e-2", "lr = {1..2000000}")
    with pytest.raises(ConfigError, match="range '{1..2000000}' gives 2000000 values"):
        load_ini(tmp_path, text)
