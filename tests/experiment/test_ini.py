"""Reading an ini (mosaic/experiment/ini.py): the [PROCESS] and [MONITOR] settings, class sections and their
keys, where class files are found, and validation errors that name the file, section and key in one line."""

import os

import pytest

from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment
from tests.fakes import (
    CLASS_FILES,
    DATASET,
    FUNNEL,
    MONITOR,
    PROCESS,
    TUTORIAL,
    ini_error,
    load_ini,
    mlp_ini,
    write_ini,
)


def assert_names(message, section, key):
    assert f"[{section}]" in message
    assert key in message


# ---------------------------------------------------------------------------------------------------------
# [PROCESS] and [MONITOR]


def test_tutorial_settings(tmp_path):
    experiment = load_ini(tmp_path, TUTORIAL)
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
    experiment = load_ini(tmp_path, TUTORIAL)
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
    experiment = load_ini(tmp_path, "\n".join([PROCESS, DATASET, FUNNEL]))
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
    experiment = load_ini(tmp_path, "\n".join([PROCESS, f"[MONITOR]\n{lines}\n", DATASET, FUNNEL]))
    assert getattr(experiment.monitor, field) == expected


def test_process_optional_keys(tmp_path):
    extra = (
        "loss_function = L1Loss\noptimizer = SGD\nseed = 7\ncheckpoint_every = 10\n"
        "momentum = 0.9\ncomment = hello world\n"
        "class_loss_function = MyLoss\npath_to_class_loss_function = loss.py\n"
    )
    text = mlp_ini("width = 2", process_extra=extra).replace("run_files_path = .runs", "run_files_path = /tmp/abs_runs")
    experiment = load_ini(tmp_path, text)
    process = experiment.process
    assert process.loss_function == "L1Loss"
    assert process.optimizer == "SGD"
    assert process.seed == 7
    assert process.checkpoint_every == 10
    assert process.run_files_path == "/tmp/abs_runs"
    assert process.extra == (("comment", "hello world"),)  # momentum is a training setting, passed to SGD
    assert process.training == (("lr", (0.01,)), ("optimizer", ("SGD",)), ("momentum", (0.9,)))
    assert process.class_loss_function == "MyLoss"
    assert process.path_to_class_loss_function == os.path.realpath(tmp_path / "loss.py")
    run = experiment.runs[0]
    assert [module.path for module in run.modules] == [
        os.path.realpath(tmp_path / "dataset.py"),
        os.path.realpath(tmp_path / "mlp.py"),
    ]


def test_two_sections_may_share_a_class_file(tmp_path):
    text = "\n".join([PROCESS.replace("pipeline_scheme = mlp", "pipeline_scheme = mlp, head"), DATASET, FUNNEL])
    text += "\n[head]\ntype = head\nclass = mlp_brick\npath_to_class = mlp.py\n"
    experiment = load_ini(tmp_path, text)
    run = experiment.runs[0]
    dataset, mlp = os.path.realpath(tmp_path / "dataset.py"), os.path.realpath(tmp_path / "mlp.py")
    assert [module.path for module in run.modules] == [dataset, mlp, mlp]
    assert run.pipeline == "dataset_OR(1,200,0.8) | mlp_funnel(4,2) | mlp_brick()"


# ---------------------------------------------------------------------------------------------------------
# Class sections: keys, case


def test_keys_keep_case(tmp_path):
    experiment = load_ini(tmp_path, mlp_ini("hiddenSize = 8\nHiddenSize = 9\nkey = {hiddenSize}-{HiddenSize}"))
    module = experiment.runs[0].model_modules[0]
    assert module.params == (("hiddenSize", 8), ("HiddenSize", 9))
    assert module.key == "8-9"


def test_reserved_keys_are_scalars(tmp_path):
    experiment = load_ini(tmp_path, mlp_ini("key = a, b {class}\nwidth = 1"))
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
    experiment = load_ini(tmp_path, mlp_ini(f"key = {template}\nwidth = 3\nlength = 4\nrate = 1e-2\nflag = True"))
    assert experiment.runs[0].model_key == expected


def test_default_key_is_class(tmp_path):
    experiment = load_ini(tmp_path, mlp_ini("width = 3"))
    module = experiment.runs[0].model_modules[0]
    assert module.key_template == "{class}"
    assert module.key == "mlp_funnel"


# ---------------------------------------------------------------------------------------------------------
# Class files


def test_path_to_class_falls_back_to_cwd(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "mosaic" / "share").mkdir(parents=True)
    (project / "mosaic" / "share" / "mlp.py").write_text(CLASS_FILES["mlp.py"])
    monkeypatch.chdir(project)
    text = TUTORIAL.replace("path_to_class = ./mlp.py", "path_to_class = ./mosaic/share/mlp.py")
    experiment = load_ini(tmp_path / "inis", text)
    module = experiment.runs[0].model_modules[0]
    assert module.path == os.path.realpath(project / "mosaic" / "share" / "mlp.py")
    assert module.path_in_ini == "mosaic/share/mlp.py"


def test_path_to_class_prefers_ini_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (elsewhere / "mlp.py").write_text(CLASS_FILES["mlp.py"])
    monkeypatch.chdir(elsewhere)
    experiment = load_ini(tmp_path / "inis", TUTORIAL)
    assert experiment.runs[0].model_modules[0].path == os.path.realpath(tmp_path / "inis" / "mlp.py")


def test_absolute_path_to_class(tmp_path):
    absolute = tmp_path / "lib" / "mlp.py"
    absolute.parent.mkdir()
    absolute.write_text(CLASS_FILES["mlp.py"])
    text = TUTORIAL.replace("path_to_class = ./mlp.py", f"path_to_class = {tmp_path}/lib/../lib/mlp.py")
    module = load_ini(tmp_path / "inis", text).runs[0].model_modules[0]
    assert module.path == os.path.realpath(absolute)
    assert module.path_in_ini == str(absolute)


def test_missing_class_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = TUTORIAL.replace("path_to_class = ./mlp.py", "path_to_class = nowhere/mlp.py", 1)
    message = ini_error(tmp_path / "inis", text)
    assert_names(message, "mlp_funnel", "path_to_class")
    assert str(tmp_path / "inis" / "nowhere" / "mlp.py") in message
    assert str(tmp_path / "nowhere" / "mlp.py") in message


def test_missing_class_lists_the_classes_the_file_defines(tmp_path):
    message = ini_error(tmp_path, TUTORIAL.replace("class = mlp_funnel", "class = mlp_funnel, mlp_ghost"))
    assert message == (f"{tmp_path / 'config.ini'}: [mlp_funnel] class: mlp.py defines no class 'mlp_ghost';"
                       " it defines: mlp_funnel, mlp_brick")


def test_missing_required_key_names_what_was_found_instead(tmp_path):
    message = ini_error(tmp_path, TUTORIAL.replace("epochs = 400", "epoch = 6"))
    assert message == (f"{tmp_path / 'config.ini'}: [PROCESS] epochs: required key is missing"
                       " (found 'epoch': did you mean 'epochs'?)")


@pytest.mark.parametrize("monitor, expected", [
    ("", "config.ini: no [MONITOR] section: each run is trained once (multiplicity = 1); add [MONITOR]"
         " multiplicity = 3 for replicates to compare"),
    ("[MONITOR]\nnb_processus = 2\n", "config.ini: [MONITOR] gives no multiplicity: each run is trained once"
                                       " (multiplicity = 1); add multiplicity = 3 for replicates to compare"),
    ("[MONITOR]\nmultiplicity = 1\n", None),  # one replicate, as written
    (MONITOR, None),
])
def test_a_single_replicate_left_by_default_is_warned_of(tmp_path, monkeypatch, monitor, expected):
    from mosaic.experiment.ini import single_replicate_warning

    write_ini(tmp_path, "\n".join([PROCESS, monitor, DATASET, FUNNEL]))
    monkeypatch.chdir(tmp_path)
    assert single_replicate_warning("config.ini") == expected


def test_class_file_syntax_error(tmp_path):
    path = write_ini(tmp_path, TUTORIAL)
    (tmp_path / "mlp.py").write_text("class mlp_funnel(:\n")
    with pytest.raises(MosaicError) as caught:
        load_experiment(path)
    message = str(caught.value)
    assert "[mlp_funnel] class" in message and "syntax error" in message and "\n" not in message


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
    message = ini_error(tmp_path, text.replace(old, new, 1))
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
    message = ini_error(tmp_path, text)
    for fragment in fragments:
        assert fragment in message


def test_missing_ini_file(tmp_path):
    with pytest.raises(MosaicError, match="nothere.ini: file not found"):
        load_experiment(tmp_path / "nothere.ini")


def test_percent_signs_and_comments(tmp_path):
    text = mlp_ini("# a comment\n; another\nlabel = 50% off\nwidth = 2")
    module = load_ini(tmp_path, text).runs[0].model_modules[0]
    assert module.params == (("label", "50% off"), ("width", 2))


def test_multiline_values(tmp_path):
    runs = load_ini(tmp_path, mlp_ini("width = 1,\n    2,\n    3")).runs
    assert [r.model_modules[0].param_dict()["width"] for r in runs] == [1, 2, 3]
