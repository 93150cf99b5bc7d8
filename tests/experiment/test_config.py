"""Tests for mosaic.experiment: the ini grammar, validation, expansion, hashing and seeds."""

import hashlib
import json
import os

import pytest

from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment
from mosaic.experiment.classscan import find_class
from mosaic.experiment.values import parse_values

CLASS_FILES = {
    "dataset.py": "class dataset_OR:\n    pass\n\n\nclass dataset_XOR:\n    pass\n",
    "mlp.py": "class mlp_funnel:\n    pass\n\n\nclass mlp_brick:\n    pass\n",
    "chain.py": "class gen:\n    pass\n\n\nclass noise:\n    pass\n\n\nclass fit:\n    pass\n",
    "loss.py": "class MyLoss:\n    pass\n",
}

PROCESS = """\
[PROCESS]
lr = 1e-2
epochs = 400
data_scheme = dataset
pipeline_scheme = mlp
run_files_path = .runs
"""

MONITOR = """\
[MONITOR]
need_gpu = False
gpu_available = None
nb_processus = 8
multiplicity = 4
cache_database_path = ./cache.db
cache_size = 1M
"""

DATASET = """\
[dataset_OR]
type = dataset
class = dataset_OR
path_to_class = ./dataset.py
key = data_{class}
batch_size = 1
data_size = 200
train_prop = 0.8
"""

FUNNEL = """\
[mlp_funnel]
type = mlp
class = mlp_funnel
path_to_class = ./mlp.py
key = mlp_funnel
length = 4
width = {2-4}
"""

BRICK = """\
[mlp_brick]
type = mlp
class = mlp_brick
path_to_class = ./mlp.py
key = mlp_brick
length = 4
width = {2-4}
"""

TUTORIAL = "\n".join([PROCESS, MONITOR, DATASET, FUNNEL, BRICK])


def write_ini(folder, text, name="config.ini"):
    """Write the class files and the ini into `folder`; return the ini's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, source in CLASS_FILES.items():
        (folder / file_name).write_text(source)
    path = folder / name
    path.write_text(text)
    return path


def load(folder, text):
    return load_experiment(write_ini(folder, text))


def mlp_ini(body, multiplicity=1, process_extra=""):
    """A one-dataset ini whose single mlp section has the given body lines."""
    monitor = f"[MONITOR]\nmultiplicity = {multiplicity}\n"
    section = f"[mlp]\ntype = mlp\nclass = mlp_funnel\npath_to_class = mlp.py\n{body}\n"
    return "\n".join([PROCESS + process_extra, monitor, DATASET, section])


def error_of(folder, text):
    with pytest.raises(MosaicError) as caught:
        load(folder, text)
    message = str(caught.value)
    assert "\n" not in message
    assert "config.ini" in message
    return message


def assert_names(message, section, key):
    assert f"[{section}]" in message
    assert key in message


def parse(text):
    return parse_values(text, "f.ini: [s] k")


# ---------------------------------------------------------------------------------------------------------
# Value grammar


@pytest.mark.parametrize(
    "text, expected",
    [
        ("relu, tanh", ["relu", "tanh"]),
        ("relu,tanh", ["relu", "tanh"]),
        ("  relu  ,   tanh  ", ["relu", "tanh"]),
        ("hello world", ["hello world"]),
        ("{2-5}", [2, 3, 4, 5]),
        ("{ 2 - 5 }", [2, 3, 4, 5]),
        ("{3-3}", [3]),
        ("1, 2, {4-10}", [1, 2, 4, 5, 6, 7, 8, 9, 10]),
        ("{4-5}, 7", [4, 5, 7]),
        ("{0-10:5}", [0, 5, 10]),
        ("{0-9:5}", [0, 5]),
        ("{0.1-0.5:0.1}", [0.1, 0.2, 0.3, 0.4, 0.5]),
        ("{0-1:0.25}", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("{1-2:0.5}", [1.0, 1.5, 2.0]),
        ("{-2..2}", [-2, -1, 0, 1, 2]),
        ("{-1..1:0.5}", [-1.0, -0.5, 0.0, 0.5, 1.0]),
        ("{0..0.3:0.1}", [0.0, 0.1, 0.2, 0.3]),
        ("{1e-3..1e-1:log3}", [0.001, 0.01, 0.1]),
        ("{1..1000:log4}", [1.0, 10.0, 100.0, 1000.0]),
        ("{1e0..1e2:20}", [1.0, 21.0, 41.0, 61.0, 81.0]),
        ("1, 2, 1, {1-3}", [1, 2, 3]),
        ("'a, b', c", ["a, b", "c"]),
        ('"x", \'y\'', ["x", "y"]),
        ('"42"', ["42"]),
        ('""', [""]),
        ('"{5-2}"', ["{5-2}"]),
    ],
)
def test_parse_values_forms(text, expected):
    values = parse(text)
    assert values == expected
    assert [type(v) for v in values] == [type(v) for v in expected]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("-3", -3),
        ("42", 42),
        ("0.8", 0.8),
        ("1e-2", 0.01),
        (".5", 0.5),
        ("-2.5E3", -2500.0),
        ("True", True),
        ("False", False),
        ("true", "true"),
        ("nan", "nan"),
        ("inf", "inf"),
        ("-inf", "-inf"),
        ("1_000", "1_000"),
        ("relu", "relu"),
        ("./a/b.py", "./a/b.py"),
    ],
)
def test_item_typing(text, expected):
    (value,) = parse(text)
    assert value == expected
    assert type(value) is type(expected)


def test_duplicates_keep_distinct_types():
    assert parse("1, 1.0, True, '1', 1") == [1, 1.0, True, "1"]
    assert [type(v) for v in parse("1, 1.0, True, '1'")] == [int, float, bool, str]


def test_float_ranges_are_rounded():
    values = parse("{0.1-0.9:0.1}")
    assert values == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert str(values[2]) == "0.3"
    assert parse("{1e-4..1:log5}") == [0.0001, 0.001, 0.01, 0.1, 1.0]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("{5-2}", "empty range"),
        ("{2..-2}", "empty range"),
        ("{2-5}abc", "malformed range"),
        ("abc{2-5}", "malformed range"),
        ("{a-b}", "malformed range"),
        ("{1-}", "malformed range"),
        ("{-1-3}", "malformed range"),
        ("{1,2}", "malformed range"),
        ("{{1-2}}", "malformed range"),
        ("{0.1-0.5}", "non-integer bounds"),
        ("{1-5:0}", "step must be positive"),
        ("{1..5:-1}", "step must be positive"),
        ("{1-5:x}", "malformed step"),
        ("{0..10:log3}", "positive bounds"),
        ("{-1..10:log3}", "positive bounds"),
        ("{1..10:log1}", "between 2"),
        ("{1-5", "unbalanced braces"),
        ("1-5}", "unbalanced braces"),
        ("a, {1-2, b", "unbalanced braces"),
        ("a,, b", "empty item"),
        ("a,", "empty item"),
        ("", "empty value"),
        ("'abc", "unterminated quote"),
        ("'a'b", "text after a closing quote"),
        ("{0-100000000}", "at most"),
    ],
)
def test_parse_values_errors(text, fragment):
    with pytest.raises(MosaicError) as caught:
        parse(text)
    message = str(caught.value)
    assert message.startswith("f.ini: [s] k: ")
    assert fragment in message
    assert "\n" not in message


# ---------------------------------------------------------------------------------------------------------
# The tutorial: expansion order, numbering, display, keys


def test_tutorial_expansion(tmp_path):
    experiment = load(tmp_path, TUTORIAL)
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


def test_tutorial_settings(tmp_path):
    experiment = load(tmp_path, TUTORIAL)
    process, monitor = experiment.process, experiment.monitor
    assert experiment.ini_path == str(tmp_path / "config.ini")
    assert process.lr == 0.01
    assert process.epochs == 400
    assert process.data_scheme == ("dataset",)
    assert process.pipeline_scheme == ("mlp",)
    assert process.run_files_path == str(tmp_path / ".runs")
    assert (process.loss_function, process.optimizer) == ("MSELoss", "Adam")
    assert (process.seed, process.checkpoint_every) == (0, None)
    assert process.class_loss_function is None and process.path_to_class_loss_function is None
    assert process.extra == ()
    assert monitor.need_gpu is False
    assert monitor.gpu_available is None
    assert monitor.nb_processus == 8
    assert monitor.multiplicity == 4
    assert monitor.cache_database_path == str(tmp_path / "cache.db")
    assert monitor.cache_size == 1_000_000


def test_module_fields(tmp_path):
    experiment = load(tmp_path, TUTORIAL)
    data, model = experiment.runs[5].modules
    assert data.params == (("batch_size", 1), ("data_size", 200), ("train_prop", 0.8))
    assert [type(v) for _, v in data.params] == [int, int, float]
    assert model.section == "mlp_funnel"
    assert model.type == "mlp"
    assert model.class_name == "mlp_funnel"
    assert model.path == os.path.realpath(tmp_path / "mlp.py")
    assert model.path_in_ini == "mlp.py"
    assert model.key_template == "mlp_funnel"
    assert model.display() == "mlp_funnel(4,3)"
    assert model.param_dict() == {"length": 4, "width": 3}
    assert data.key_template == "data_{class}"


def test_monitor_defaults_and_optional_section(tmp_path):
    experiment = load(tmp_path, "\n".join([PROCESS, DATASET, FUNNEL]))
    monitor = experiment.monitor
    assert monitor.need_gpu is False
    assert monitor.gpu_available is None
    assert monitor.nb_processus is None
    assert monitor.multiplicity == 1
    assert monitor.cache_database_path == str(tmp_path / "cache.db")
    assert monitor.cache_size == 1_000_000_000
    assert len(experiment.runs) == 3


@pytest.mark.parametrize(
    "lines, field, expected",
    [
        ("need_gpu = yes", "need_gpu", True),
        ("need_gpu = true", "need_gpu", True),
        ("need_gpu = 0", "need_gpu", False),
        ("gpu_available = cuda:0, cuda:1", "gpu_available", ("cuda:0", "cuda:1")),
        ("gpu_available = cuda:0 cuda:1", "gpu_available", ("cuda:0", "cuda:1")),
        ("cache_size = 500K", "cache_size", 500_000),
        ("cache_size = 2G", "cache_size", 2_000_000_000),
        ("cache_size = 1.5G", "cache_size", 1_500_000_000),
        ("cache_size = 1T", "cache_size", 10**12),
        ("cache_size = 1024", "cache_size", 1024),
        ("cache_database_path = /tmp/elsewhere.db", "cache_database_path", "/tmp/elsewhere.db"),
    ],
)
def test_monitor_values(tmp_path, lines, field, expected):
    experiment = load(tmp_path, "\n".join([PROCESS, f"[MONITOR]\n{lines}\n", DATASET, FUNNEL]))
    assert getattr(experiment.monitor, field) == expected


def test_process_optional_keys(tmp_path):
    extra = (
        "loss_function = L1Loss\noptimizer = SGD\nseed = 7\ncheckpoint_every = 10\n"
        "momentum = 0.9\ncomment = hello world\n"
        "class_loss_function = MyLoss\npath_to_class_loss_function = loss.py\n"
    )
    text = mlp_ini("width = 2", process_extra=extra).replace("run_files_path = .runs", "run_files_path = /tmp/abs_runs")
    experiment = load(tmp_path, text)
    process = experiment.process
    assert process.loss_function == "L1Loss"
    assert process.optimizer == "SGD"
    assert process.seed == 7
    assert process.checkpoint_every == 10
    assert process.run_files_path == "/tmp/abs_runs"
    assert process.extra == (("momentum", 0.9), ("comment", "hello world"))
    assert process.class_loss_function == "MyLoss"
    assert process.path_to_class_loss_function == os.path.realpath(tmp_path / "loss.py")
    run = experiment.runs[0]
    assert experiment.class_files(run) == [
        os.path.realpath(tmp_path / "dataset.py"),
        os.path.realpath(tmp_path / "mlp.py"),
        os.path.realpath(tmp_path / "loss.py"),
    ]


def test_class_files_deduplicated(tmp_path):
    text = "\n".join([PROCESS.replace("pipeline_scheme = mlp", "pipeline_scheme = mlp, head"), DATASET, FUNNEL])
    text += "\n[head]\ntype = head\nclass = mlp_brick\npath_to_class = mlp.py\n"
    experiment = load(tmp_path, text)
    run = experiment.runs[0]
    expected = [os.path.realpath(tmp_path / "dataset.py"), os.path.realpath(tmp_path / "mlp.py")]
    assert experiment.class_files(run) == expected
    assert run.pipeline == "dataset_OR(1,200,0.8) | mlp_funnel(4,2) | mlp_brick()"


def test_run_by_hash(tmp_path):
    experiment = load(tmp_path, TUTORIAL)
    for run in experiment.runs:
        assert experiment.run_by_hash(run.run_hash) is run
    with pytest.raises(KeyError):
        experiment.run_by_hash("0" * 16)


# ---------------------------------------------------------------------------------------------------------
# Class sections: grids, keys, case, chains


def test_grid_order_first_key_outermost(tmp_path):
    experiment = load(tmp_path, mlp_ini("length = {2-3}\nwidth = 5, 6"))
    assert [r.pipeline.split(" | ")[1] for r in experiment.runs] == [
        "mlp_funnel(2,5)",
        "mlp_funnel(2,6)",
        "mlp_funnel(3,5)",
        "mlp_funnel(3,6)",
    ]


def test_class_list_takes_part_in_grid(tmp_path):
    text = "\n".join([PROCESS, DATASET])
    text += "\n[mlp]\ntype = mlp\nwidth = 1, 2\nclass = mlp_funnel, mlp_brick\npath_to_class = mlp.py\n"
    experiment = load(tmp_path, text)
    assert [r.model_modules[0].display() for r in experiment.runs] == [
        "mlp_funnel(1)",
        "mlp_brick(1)",
        "mlp_funnel(2)",
        "mlp_brick(2)",
    ]
    assert [r.model_key for r in experiment.runs] == ["mlp_funnel", "mlp_brick", "mlp_funnel", "mlp_brick"]


def test_sections_of_same_type_in_file_order(tmp_path):
    text = "\n".join([PROCESS, DATASET, BRICK, FUNNEL])
    classes = [r.model_modules[0].class_name for r in load(tmp_path, text).runs]
    assert classes == ["mlp_brick"] * 3 + ["mlp_funnel"] * 3


def test_keys_keep_case(tmp_path):
    experiment = load(tmp_path, mlp_ini("hiddenSize = 8\nHiddenSize = 9\nkey = {hiddenSize}-{HiddenSize}"))
    module = experiment.runs[0].model_modules[0]
    assert module.params == (("hiddenSize", 8), ("HiddenSize", 9))
    assert module.key == "8-9"


def test_reserved_keys_are_scalars(tmp_path):
    experiment = load(tmp_path, mlp_ini("key = a, b {class}\nwidth = 1"))
    module = experiment.runs[0].model_modules[0]
    assert module.key == "a, b mlp_funnel"
    assert module.params == (("width", 1),)


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{class}_w{width}_l{length}", "mlp_funnel_w3_l4"),
        ("{class}_{width}", "mlp_funnel_3"),
        ("{width}{length}", "34"),
        ("pre {class} post", "pre mlp_funnel post"),
        ("data_{class}", "data_mlp_funnel"),
        ("a{class}b{width}c", "amlp_funnelb3c"),
        ("{type}/{section}/{rate}/{flag}", "mlp/mlp/0.01/True"),
        ("plain", "plain"),
    ],
)
def test_key_templates(tmp_path, template, expected):
    experiment = load(tmp_path, mlp_ini(f"key = {template}\nwidth = 3\nlength = 4\nrate = 1e-2\nflag = True"))
    assert experiment.runs[0].model_key == expected


def test_default_key_is_class(tmp_path):
    experiment = load(tmp_path, mlp_ini("width = 3"))
    module = experiment.runs[0].model_modules[0]
    assert module.key_template == "{class}"
    assert module.key == "mlp_funnel"


def test_multi_stage_data_chain(tmp_path):
    process = PROCESS.replace("data_scheme = dataset", "data_scheme =  gen ,   noise").replace(
        "pipeline_scheme = mlp", "pipeline_scheme = fit"
    )
    sections = (
        "[gen]\ntype = gen\nclass = gen\npath_to_class = chain.py\nsize = 10, 20\n\n"
        "[noise]\ntype = noise\nclass = noise\npath_to_class = chain.py\nkey = n{sigma}\nsigma = 0.1, 0.2\n\n"
        "[fit]\ntype = fit\nclass = fit\npath_to_class = chain.py\n"
    )
    experiment = load(tmp_path, process + "\n" + sections)
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
    run = load(tmp_path, TUTORIAL).runs[5]
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
    before = hashes_by_pipeline(load(tmp_path / "a", TUTORIAL))
    grown = TUTORIAL.replace("width = {2-4}", "width = {2-4}, 8").replace("multiplicity = 4", "multiplicity = 6")
    after = hashes_by_pipeline(load(tmp_path / "b", grown))
    assert len(before) == 24 and len(after) == 48
    assert all(after[k] == v for k, v in before.items())
    assert len(set(after.values())) == 48


def test_hashes_ignore_key_section_epochs_and_monitor(tmp_path):
    before = hashes_by_pipeline(load(tmp_path / "a", TUTORIAL))
    edited = (
        TUTORIAL.replace("key = mlp_funnel", "key = {class}_w{width}")
        .replace("[mlp_brick]", "[brick_renamed]")
        .replace("epochs = 400", "epochs = 10\nnote = x")
        .replace("run_files_path = .runs", "run_files_path = other")
        .replace("nb_processus = 8", "nb_processus = 2")
    )
    assert hashes_by_pipeline(load(tmp_path / "b", edited)) == before


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
    before = load(tmp_path / "a", TUTORIAL).runs
    after = load(tmp_path / "b", TUTORIAL.replace(old, new)).runs
    assert all(a.run_hash != b.run_hash for a, b in zip(before, after))


def test_seeds_deterministic_and_distinct(tmp_path):
    first = load(tmp_path / "a", TUTORIAL).runs
    second = load(tmp_path / "b", TUTORIAL).runs
    assert [r.seed for r in first] == [r.seed for r in second]
    assert [r.run_hash for r in first] == [r.run_hash for r in second]
    assert len({r.seed for r in first[:4]}) == 4
    assert len({r.seed for r in first}) == 24
    assert all(0 <= r.seed < 2**31 for r in first)
    assert all(len(r.run_hash) == 16 and int(r.run_hash, 16) >= 0 for r in first)
    reseeded = load(tmp_path / "c", TUTORIAL.replace("epochs = 400", "epochs = 400\nseed = 3")).runs
    assert [r.seed for r in reseeded] != [r.seed for r in first]


def test_identical_sections_collide(tmp_path):
    message = error_of(tmp_path, TUTORIAL + "\n" + FUNNEL.replace("[mlp_funnel]", "[funnel_copy]"))
    assert "[mlp_funnel]" in message and "[funnel_copy]" in message


# ---------------------------------------------------------------------------------------------------------
# Class files


def test_path_to_class_falls_back_to_cwd(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "mosaic" / "share").mkdir(parents=True)
    (project / "mosaic" / "share" / "mlp.py").write_text(CLASS_FILES["mlp.py"])
    monkeypatch.chdir(project)
    text = TUTORIAL.replace("path_to_class = ./mlp.py", "path_to_class = ./mosaic/share/mlp.py")
    experiment = load(tmp_path / "inis", text)
    module = experiment.runs[0].model_modules[0]
    assert module.path == os.path.realpath(project / "mosaic" / "share" / "mlp.py")
    assert module.path_in_ini == "mosaic/share/mlp.py"


def test_path_to_class_prefers_ini_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (elsewhere / "mlp.py").write_text(CLASS_FILES["mlp.py"])
    monkeypatch.chdir(elsewhere)
    experiment = load(tmp_path / "inis", TUTORIAL)
    assert experiment.runs[0].model_modules[0].path == os.path.realpath(tmp_path / "inis" / "mlp.py")


def test_absolute_path_to_class(tmp_path):
    absolute = tmp_path / "lib" / "mlp.py"
    absolute.parent.mkdir()
    absolute.write_text(CLASS_FILES["mlp.py"])
    text = TUTORIAL.replace("path_to_class = ./mlp.py", f"path_to_class = {tmp_path}/lib/../lib/mlp.py")
    module = load(tmp_path / "inis", text).runs[0].model_modules[0]
    assert module.path == os.path.realpath(absolute)
    assert module.path_in_ini == str(absolute)


def test_missing_class_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = TUTORIAL.replace("path_to_class = ./mlp.py", "path_to_class = nowhere/mlp.py", 1)
    message = error_of(tmp_path / "inis", text)
    assert_names(message, "mlp_funnel", "path_to_class")
    assert str(tmp_path / "inis" / "nowhere" / "mlp.py") in message
    assert str(tmp_path / "nowhere" / "mlp.py") in message


def test_missing_class(tmp_path):
    message = error_of(tmp_path, TUTORIAL.replace("class = mlp_funnel", "class = mlp_funnel, mlp_ghost"))
    assert_names(message, "mlp_funnel", "class")
    assert "no class 'mlp_ghost'" in message
    assert os.path.realpath(tmp_path / "mlp.py") in message


def test_class_file_syntax_error(tmp_path):
    path = write_ini(tmp_path, TUTORIAL)
    (tmp_path / "mlp.py").write_text("class mlp_funnel(:\n")
    with pytest.raises(MosaicError) as caught:
        load_experiment(path)
    message = str(caught.value)
    assert "[mlp_funnel] class" in message and "syntax error" in message and "\n" not in message


def test_find_class_static(tmp_path):
    source = (
        "import os.path\n"
        "import numpy as np\n"
        "from torch.nn import Linear, ReLU as Act\n"
        "A = B = 1\n"
        "C, (D, E) = 1, (2, 3)\n"
        "F: int = 3\n"
        "def func():\n    inner = 1\n"
        "async def afunc():\n    pass\n"
        "class Outer:\n    class Inner:\n        pass\n"
        "try:\n    from fast import Fast\nexcept ImportError:\n    class Slow:\n        pass\n"
        "if True:\n    G = 1\nelse:\n    H = 2\n"
        "raise SystemExit('must never be imported')\n"
    )
    path = tmp_path / "mod.py"
    path.write_text(source)
    defined = "os np Linear Act A B C D E F func afunc Outer Fast Slow G H"
    for name in defined.split():
        assert find_class(str(path), name), name
    for name in ("inner", "Inner", "numpy", "ReLU", "path", "Missing"):
        assert not find_class(str(path), name), name


def test_find_class_sees_file_changes(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text("class A:\n    pass\n")
    assert find_class(str(path), "A")
    path.write_text("class Bee:\n    pass\n")
    assert find_class(str(path), "Bee")
    assert not find_class(str(path), "A")


def test_find_class_star_import(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text("from elsewhere import *\n")
    assert find_class(str(path), "Anything")


# ---------------------------------------------------------------------------------------------------------
# Validation errors: file, section and key named, one line


@pytest.mark.parametrize(
    "old, new, section, key, fragment",
    [
        ("epochs = 400", "epochs = abc", "PROCESS", "epochs", "not an integer"),
        ("epochs = 400", "epochs = 1.5", "PROCESS", "epochs", "not an integer"),
        ("epochs = 400", "epochs = 0", "PROCESS", "epochs", ">= 1"),
        ("epochs = 400\n", "", "PROCESS", "epochs", "missing"),
        ("lr = 1e-2", "lr = fast", "PROCESS", "lr", "not a number"),
        ("lr = 1e-2", "lr = nan", "PROCESS", "lr", "not a number"),
        ("lr = 1e-2\n", "", "PROCESS", "lr", "missing"),
        ("lr = 1e-2", "lr =", "PROCESS", "lr", "empty"),
        ("data_scheme = dataset\n", "", "PROCESS", "data_scheme", "missing"),
        ("pipeline_scheme = mlp", "pipeline_scheme = mlp,, other", "PROCESS", "pipeline_scheme", "empty item"),
        ("pipeline_scheme = mlp", "pipeline_scheme = mlp, mlp", "PROCESS", "pipeline_scheme", "twice"),
        ("pipeline_scheme = mlp", "pipeline_scheme = mlp, dataset", "PROCESS", "pipeline_scheme", "twice"),
        ("pipeline_scheme = mlp", "pipeline_scheme = mlp, head", "PROCESS", "pipeline_scheme", "no section has type"),
        ("seed = 0", "seed = x", "PROCESS", "seed", "not an integer"),
        ("epochs = 400", "epochs = 400\ncheckpoint_every = -1", "PROCESS", "checkpoint_every", ">= 0"),
        ("epochs = 400", "epochs = 400\noptimizer = torch.optim.Adam()", "PROCESS", "optimizer", "not a valid name"),
        ("epochs = 400", "epochs = 400\nclass_loss_function = L", "PROCESS", "path_to_class_loss_function", "together"),
        ("seed = 0", "path_to_class_loss_function = l.py", "PROCESS", "class_loss_function", "together"),
        (
            "epochs = 400",
            "epochs = 400\nclass_loss_function = Nope\npath_to_class_loss_function = loss.py",
            "PROCESS",
            "class_loss_function",
            "no class 'Nope'",
        ),
        ("multiplicity = 4", "multiplicity = 0", "MONITOR", "multiplicity", ">= 1"),
        ("need_gpu = False", "need_gpu = maybe", "MONITOR", "need_gpu", "not a boolean"),
        ("nb_processus = 8", "nb_processus = many", "MONITOR", "nb_processus", "not an integer"),
        ("cache_size = 1M", "cache_size = 1X", "MONITOR", "cache_size", "not a size"),
        ("cache_size = 1M", "cache_size = 1.5", "MONITOR", "cache_size", "not a size"),
        ("cache_size = 1M", "cache_size = 0", "MONITOR", "cache_size", "positive"),
        ("width = {2-4}", "width = {4-2}", "mlp_funnel", "width", "empty range"),
        ("width = {2-4}", "width = {2-4}abc", "mlp_funnel", "width", "malformed range"),
        ("width = {2-4}", "width = {a-b}", "mlp_funnel", "width", "malformed range"),
        ("width = {2-4}", "width = {2-4", "mlp_funnel", "width", "unbalanced"),
        ("key = mlp_funnel", "key = {class}_{depth}", "mlp_funnel", "key", "unknown placeholder '{depth}'"),
        ("key = mlp_funnel", "key = {class", "mlp_funnel", "key", "unbalanced"),
        ("key = mlp_funnel", "key = class}", "mlp_funnel", "key", "unbalanced"),
        ("type = mlp\nclass = mlp_funnel", "type = mlp_2\nclass = mlp_funnel", "mlp_funnel", "type", "neither"),
        ("type = mlp\nclass = mlp_funnel", "class = mlp_funnel", "mlp_funnel", "type", "missing"),
        ("class = mlp_funnel\n", "", "mlp_funnel", "class", "missing"),
        ("class = mlp_funnel", "class = 3", "mlp_funnel", "class", "not a valid class name"),
        ("path_to_class = ./mlp.py\nkey = mlp_funnel", "key = mlp_funnel", "mlp_funnel", "path_to_class", "missing"),
    ],
)
def test_validation_errors(tmp_path, old, new, section, key, fragment):
    text = TUTORIAL.replace("epochs = 400", "epochs = 400\nseed = 0", 1)
    assert old in text
    message = error_of(tmp_path, text.replace(old, new, 1))
    assert f"[{section}] {key}: " in message
    assert fragment in message
    assert message.startswith(str(tmp_path / "config.ini") + ": ")


@pytest.mark.parametrize(
    "text, fragments",
    [
        (TUTORIAL + "\nwidth = 9\n", ["[mlp_brick] width", "duplicate key", "line"]),
        (TUTORIAL + "\n[mlp_brick]\ntype = mlp\n", ["[mlp_brick]", "duplicate section", "line"]),
        ("lr = 1\n" + TUTORIAL, ["line 1", "before the first [section]"]),
        (TUTORIAL + "\njust some words\n", ["line", "cannot parse", "just some words"]),
        (MONITOR + DATASET + FUNNEL, ["missing required section [PROCESS]"]),
        (TUTORIAL + "\n[DEFAULT]\nlr = 3\n", ["[DEFAULT] type", "missing"]),
    ],
)
def test_ini_level_errors(tmp_path, text, fragments):
    message = error_of(tmp_path, text)
    for fragment in fragments:
        assert fragment in message


def test_missing_ini_file(tmp_path):
    with pytest.raises(MosaicError, match="nothere.ini: file not found"):
        load_experiment(tmp_path / "nothere.ini")


def test_percent_signs_and_comments(tmp_path):
    text = mlp_ini("# a comment\n; another\nlabel = 50% off\nwidth = 2")
    module = load(tmp_path, text).runs[0].model_modules[0]
    assert module.params == (("label", "50% off"), ("width", 2))


def test_multiline_values(tmp_path):
    runs = load(tmp_path, mlp_ini("width = 1,\n    2,\n    3")).runs
    assert [r.model_modules[0].param_dict()["width"] for r in runs] == [1, 2, 3]


# ---------------------------------------------------------------------------------------------------------
# Scale


def test_ten_thousand_runs(tmp_path):
    experiment = load(tmp_path, mlp_ini("a = {1-10}\nb = {1-10}\nc = {1-10}\nd = {1-10}"))
    assert len(experiment.runs) == 10_000
    assert experiment.runs[-1].run_id == 10_000
    assert experiment.runs[-1].pipeline == "dataset_OR(1,200,0.8) | mlp_funnel(10,10,10,10)"
    assert len({r.run_hash for r in experiment.runs}) == 10_000
