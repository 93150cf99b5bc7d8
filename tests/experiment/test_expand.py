"""Expanding an ini into runs (mosaic/experiment/expand.py): their order and numbering, grids and chains,
content hashes and seeds."""

import hashlib
import json

import pytest

from tests.fakes import BRICK, DATASET, FUNNEL, PROCESS, TUTORIAL, ini_error, load_ini, mlp_ini

# ---------------------------------------------------------------------------------------------------------
# The tutorial: expansion order, numbering, display, keys


def test_tutorial_expansion(tmp_path):
    experiment = load_ini(tmp_path, TUTORIAL)
    runs = experiment.runs
    assert len(runs) == 24
    assert [r.run_id for r in runs] == list(range(1, 25))
    assert [r.replicate for r in runs] == [1, 2, 3, 4] * 6
    expected = [(cls, width) for cls in ("mlp_funnel", "mlp_brick") for width in (2, 3, 4) for _ in range(4)]
    found = [(r.model_modules[0].class_name, r.model_modules[0].param_dict()["width"]) for r in runs]
    assert found == expected
    assert runs[0].pipeline == "dataset_OR(1,200,0.8) | mlp_funnel(4,2)"
    assert runs[4].pipeline == "dataset_OR(1,200,0.8) | mlp_funnel(4,3)"
    assert runs[23].pipeline == "dataset_OR(1,200,0.8) | mlp_brick(4,4)"
    assert runs[0].dataset_key == "data_dataset_OR"
    assert runs[0].model_key == "mlp_funnel"
    assert runs[20].model_key == "mlp_brick"
    assert runs[0].n_data == 1
    assert [m.section for m in runs[0].data_modules] == ["dataset_OR"]
    assert [m.section for m in runs[0].model_modules] == ["mlp_funnel"]


def test_grid_order_first_key_outermost(tmp_path):
    experiment = load_ini(tmp_path, mlp_ini("length = {2-3}\nwidth = 5, 6"))
    assert [r.pipeline.split(" | ")[1] for r in experiment.runs] == [
        "mlp_funnel(2,5)",
        "mlp_funnel(2,6)",
        "mlp_funnel(3,5)",
        "mlp_funnel(3,6)",
    ]


def test_class_list_takes_part_in_grid(tmp_path):
    text = "\n".join([PROCESS, DATASET])
    text += "\n[mlp]\ntype = mlp\nwidth = 1, 2\nclass = mlp_funnel, mlp_brick\npath_to_class = mlp.py\n"
    experiment = load_ini(tmp_path, text)
    assert [r.model_modules[0].display() for r in experiment.runs] == [
        "mlp_funnel(1)",
        "mlp_brick(1)",
        "mlp_funnel(2)",
        "mlp_brick(2)",
    ]
    assert [r.model_key for r in experiment.runs] == ["mlp_funnel", "mlp_brick", "mlp_funnel", "mlp_brick"]


def test_sections_of_same_type_in_file_order(tmp_path):
    text = "\n".join([PROCESS, DATASET, BRICK, FUNNEL])
    classes = [r.model_modules[0].class_name for r in load_ini(tmp_path, text).runs]
    assert classes == ["mlp_brick"] * 3 + ["mlp_funnel"] * 3


def test_multi_stage_data_chain(tmp_path):
    process = PROCESS.replace("data_scheme = dataset", "data_scheme =  gen ,   noise").replace(
        "pipeline_scheme = mlp", "pipeline_scheme = fit"
    )
    sections = (
        "[gen]\ntype = gen\nclass = gen\npath_to_class = chain.py\nsize = 10, 20\n\n"
        "[noise]\ntype = noise\nclass = noise\npath_to_class = chain.py\nkey = n{sigma}\nsigma = 0.1, 0.2\n\n"
        "[fit]\ntype = fit\nclass = fit\npath_to_class = chain.py\n"
    )
    experiment = load_ini(tmp_path, process + "\n" + sections)
    assert experiment.process.data_scheme == ("gen", "noise")
    runs = experiment.runs
    assert [r.pipeline for r in runs] == [
        "gen(10) | noise(0.1) | fit()",
        "gen(10) | noise(0.2) | fit()",
        "gen(20) | noise(0.1) | fit()",
        "gen(20) | noise(0.2) | fit()",
    ]
    assert all(r.n_data == 2 for r in runs)
    assert runs[1].dataset_key == "gen | n0.2"
    assert runs[1].model_key == "fit"
    assert [m.type for m in runs[0].data_modules] == ["gen", "noise"]


# ---------------------------------------------------------------------------------------------------------
# Hashes and seeds


def test_hash_is_the_documented_sha256(tmp_path):
    run = load_ini(tmp_path, TUTORIAL).runs[5]
    payload = {
        "modules": [
            ["dataset", "dataset_OR", "dataset.py", [["batch_size", 1], ["data_size", 200], ["train_prop", 0.8]]],
            ["mlp", "mlp_funnel", "mlp.py", [["length", 4], ["width", 3]]],
        ],
        "process": {
            "lr": 0.01,
            "loss_function": "MSELoss",
            "class_loss_function": None,
            "path_to_class_loss_function": None,
            "optimizer": "Adam",
            "seed": 0,
        },
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert run.replicate == 2
    assert run.run_hash == hashlib.sha256(f"{digest}:2".encode()).hexdigest()[:16]
    assert run.seed == int(hashlib.sha256(f"0:{digest}:2".encode()).hexdigest()[:8], 16) % 2**31


def hashes_by_pipeline(experiment):
    return {(r.pipeline, r.replicate): r.run_hash for r in experiment.runs}


def test_hashes_stable_when_grid_and_multiplicity_grow(tmp_path):
    before = hashes_by_pipeline(load_ini(tmp_path / "a", TUTORIAL))
    grown = TUTORIAL.replace("width = {2-4}", "width = {2-4}, 8").replace("multiplicity = 4", "multiplicity = 6")
    after = hashes_by_pipeline(load_ini(tmp_path / "b", grown))
    assert len(before) == 24 and len(after) == 48
    assert all(after[k] == v for k, v in before.items())
    assert len(set(after.values())) == 48


def test_hashes_ignore_key_section_epochs_and_monitor(tmp_path):
    before = hashes_by_pipeline(load_ini(tmp_path / "a", TUTORIAL))
    edited = (
        TUTORIAL.replace("key = mlp_funnel", "key = {class}_w{width}")
        .replace("[mlp_brick]", "[brick_renamed]")
        .replace("epochs = 400", "epochs = 10\nnote = x")
        .replace("run_files_path = .runs", "run_files_path = other")
        .replace("nb_processus = 8", "nb_processus = 2")
    )
    assert hashes_by_pipeline(load_ini(tmp_path / "b", edited)) == before


@pytest.mark.parametrize(
    "old, new",
    [
        ("lr = 1e-2", "lr = 1e-3"),
        ("epochs = 400", "epochs = 400\nseed = 1"),
        ("epochs = 400", "epochs = 400\noptimizer = SGD"),
        ("epochs = 400", "epochs = 400\nloss_function = L1Loss"),
        ("length = 4", "length = 4.0"),
        ("length = 4", "length = '4'"),
    ],
)
def test_hashes_change_with_training_content(tmp_path, old, new):
    before = load_ini(tmp_path / "a", TUTORIAL).runs
    after = load_ini(tmp_path / "b", TUTORIAL.replace(old, new)).runs
    assert all(a.run_hash != b.run_hash for a, b in zip(before, after))


def test_seeds_deterministic_and_distinct(tmp_path):
    first = load_ini(tmp_path / "a", TUTORIAL).runs
    second = load_ini(tmp_path / "b", TUTORIAL).runs
    assert [r.seed for r in first] == [r.seed for r in second]
    assert [r.run_hash for r in first] == [r.run_hash for r in second]
    assert len({r.seed for r in first[:4]}) == 4
    assert len({r.seed for r in first}) == 24
    assert all(0 <= r.seed < 2**31 for r in first)
    assert all(len(r.run_hash) == 16 and int(r.run_hash, 16) >= 0 for r in first)
    reseeded = load_ini(tmp_path / "c", TUTORIAL.replace("epochs = 400", "epochs = 400\nseed = 3")).runs
    assert [r.seed for r in reseeded] != [r.seed for r in first]


def test_identical_sections_collide(tmp_path):
    message = ini_error(tmp_path, TUTORIAL + "\n" + FUNNEL.replace("[mlp_funnel]", "[funnel_copy]"))
    assert "[mlp_funnel]" in message and "[funnel_copy]" in message


# ---------------------------------------------------------------------------------------------------------
# Scale


def test_ten_thousand_runs(tmp_path):
    experiment = load_ini(tmp_path, mlp_ini("a = {1-10}\nb = {1-10}\nc = {1-10}\nd = {1-10}"))
    assert len(experiment.runs) == 10_000
    assert experiment.runs[-1].run_id == 10_000
    assert experiment.runs[-1].pipeline == "dataset_OR(1,200,0.8) | mlp_funnel(10,10,10,10)"
    assert len({r.run_hash for r in experiment.runs}) == 10_000



def test_the_tutorial_labels_read_as_its_classes_and_its_runs_keep_their_hashes(tmp_path):
    from mosaic.experiment import load_experiment
    from tests.fakes import ROOT, Experiment

    runs = load_experiment(ROOT / "share" / "config.ini").runs
    labels = {(r.dataset_key, r.model_key) for r in runs}
    assert labels == {("dataset_OR", "mlp_funnel"), ("dataset_OR", "mlp_brick")}
    # its former keys ("data_dataset_OR", "mlp_mlp_brick") are no part of a run's identity: no run retrains
    old = Experiment(tmp_path)
    old.edit("dataset_OR", "key", "data_{class}")
    for section in ("mlp_funnel", "mlp_brick"):
        old.edit(section, "key", "mlp_{class}")
    old_runs = load_experiment(old.ini).runs
    assert {(r.dataset_key, r.model_key) for r in old_runs} == {("data_dataset_OR", "mlp_mlp_funnel"),
                                                                ("data_dataset_OR", "mlp_mlp_brick")}
    assert [(r.run_hash, r.seed) for r in old_runs] == [(r.run_hash, r.seed) for r in runs]
