"""The bad-input matrix: each case is an input a user may give and the one-line message it gets.

tests/e2e/test_bad_input.py runs every case; RELIABILITY.md shows them as a table, written by
`python tests/e2e/bad_input_cases.py` (a test checks that the file is up to date).
"""

import re
from pathlib import Path

RELIABILITY = Path(__file__).resolve().parents[2] / "RELIABILITY.md"
START = "<!-- bad-input table: written by `python tests/e2e/bad_input_cases.py` -->"
END = "<!-- end of bad-input table -->"

# ini cases: (input, [(old text, new text), ...] applied to the tutorial ini, message excerpt).
# The ini is read by `mosaic_generate config.ini out.json`; class files are dataset.py and mlp.py beside it.
INI_CASES = [
    ("no [PROCESS] section", [("[PROCESS]", "[PROCES]")], "missing required section [PROCESS]"),
    ("`lr` missing", [("lr = 1e-2\n", "")], "[PROCESS] lr: required key is missing"),
    ("`lr = fast`", [("lr = 1e-2", "lr = fast")], "[PROCESS] lr: not a number: 'fast'"),
    ("`lr = -1`", [("lr = 1e-2", "lr = -1")], "[PROCESS] lr: must be a finite number >= 0"),
    ("`epochs = 0`", [("epochs = 400", "epochs = 0")], "[PROCESS] epochs: must be >= 1"),
    ("`epochs = 2.5`", [("epochs = 400", "epochs = 2.5")], "[PROCESS] epochs: not an integer: '2.5'"),
    ("`epochs = ٣` (an Arabic-Indic digit)", [("epochs = 400", "epochs = ٣")], "[PROCESS] epochs: not an integer"),
    ("`epoch = 400` (misspelled required key)", [("epochs = 400", "epoch = 400")],
     "[PROCESS] epochs: required key is missing (found 'epoch': did you mean 'epochs'?)"),
    ("`data_scheme = dataset,`", [("data_scheme = dataset", "data_scheme = dataset,")],
     "[PROCESS] data_scheme: empty item"),
    ("`pipeline_scheme = mlpp` (typo in a scheme)", [("pipeline_scheme = mlp", "pipeline_scheme = mlpp")],
     "[PROCESS] pipeline_scheme: no section has type 'mlpp' (did you mean 'mlp'?)"),
    ("a type in both schemes", [("pipeline_scheme = mlp", "pipeline_scheme = mlp, dataset")],
     "type 'dataset' is listed twice"),
    ("`loss_function = NoSuchLoss`", [("[PROCESS]\n", "[PROCESS]\nloss_function = NoSuchLoss\n")],
     "[PROCESS] loss_function: torch.nn has no 'NoSuchLoss'"),
    ("`optimizer = Adamm`", [("[PROCESS]\n", "[PROCESS]\noptimizer = Adamm\n")],
     "[PROCESS] optimizer: torch.optim has no 'Adamm' (did you mean 'Adam'?)"),
    ("`optimiser = SGD` (near-miss of a known key)", [("[PROCESS]\n", "[PROCESS]\noptimiser = SGD\n")],
     "[PROCESS] optimiser: unknown key (did you mean 'optimizer'?)"),
    ("`class_loss_function` without its file", [("[PROCESS]\n", "[PROCESS]\nclass_loss_function = MyLoss\n")],
     "path_to_class_loss_function: class_loss_function and path_to_class_loss_function go together"),
    ("`checkpoint_every = -1`", [("[PROCESS]\n", "[PROCESS]\ncheckpoint_every = -1\n")],
     "[PROCESS] checkpoint_every: must be >= 0"),
    ("`need_gpu = maybe`", [("need_gpu = False", "need_gpu = maybe")], "[MONITOR] need_gpu: not a boolean"),
    ("`gpu_available = gpu0`", [("gpu_available = None", "gpu_available = gpu0")],
     "[MONITOR] gpu_available: 'gpu0' is not a GPU name like cuda:0"),
    ("`multiplicty = 4` (misspelled MONITOR key)", [("multiplicity = 4", "multiplicty = 4")],
     "[MONITOR] multiplicty: unknown key (did you mean 'multiplicity'?)"),
    ("`colour = blue` in [MONITOR]", [("[MONITOR]\n", "[MONITOR]\ncolour = blue\n")],
     "[MONITOR] colour: unknown key (known: "),
    ("`multiplicity = 0`", [("multiplicity = 4", "multiplicity = 0")], "[MONITOR] multiplicity: must be >= 1"),
    ("`nb_processus = many`", [("nb_processus = 8", "nb_processus = many")],
     "[MONITOR] nb_processus: not an integer: 'many'"),
    ("`cache_size = lots`", [("cache_size = 1M", "cache_size = lots")], "[MONITOR] cache_size: not a size"),
    ("a class section without `type`", [("type = mlp\nclass = mlp_funnel", "class = mlp_funnel")],
     "[mlp_funnel] type: required key is missing"),
    ("a section whose type is in no scheme", [("type = mlp\nclass = mlp_funnel", "type = net\nclass = mlp_funnel")],
     "[mlp_funnel] type: type 'net' is in neither data_scheme nor pipeline_scheme"),
    ("a class the file does not define", [("class = mlp_funnel", "class = mlp_nope")],
     "[mlp_funnel] class: mlp.py defines no class 'mlp_nope'; it defines: mlp_funnel, mlp_brick"),
    ("a class file that does not exist", [("path_to_class = ./mlp.py\nkey = mlp_funnel",
                                           "path_to_class = ./nope.py\nkey = mlp_funnel")],
     "[mlp_funnel] path_to_class: file not found"),
    ("a class file with a syntax error", [("path_to_class = ./mlp.py\nkey = mlp_funnel",
                                           "path_to_class = ./broken.py\nkey = mlp_funnel")],
     "broken.py: line 2: syntax error"),
    ("`width = {5-2}` (an empty range)", [("width = {2-4}", "width = {5-2}")],
     "[mlp_funnel] width: empty range '{5-2}' (start is above end)"),
    ("`width = {2-5}abc`", [("width = {2-4}", "width = {2-5}abc")], "[mlp_funnel] width: malformed range"),
    ("`width = {2-5` (unbalanced braces)", [("width = {2-4}", "width = {2-5")],
     "[mlp_funnel] width: unbalanced braces"),
    ("`width = 1,,2`", [("width = {2-4}", "width = 1,,2")], "[mlp_funnel] width: empty item"),
    ("`width = \"abc` (unterminated quote)", [("width = {2-4}", 'width = "abc')],
     "[mlp_funnel] width: unterminated quote"),
    ("`width = {0.1-0.5}` (float bounds, no step)", [("width = {2-4}", "width = {0.1-0.5}")],
     "non-integer bounds; give a step"),
    ("`width = {0-100000000}`", [("width = {2-4}", "width = {0-100000000}")],
     "range '{0-100000000}' gives 100000001 values (at most 1000000)"),
    ("`{1-100000}` x `{1-100000}` in one section", [("width = {2-4}", "width = {1-100000}"),
                                                    ("length = 4", "length = {1-100000}")],
     "[mlp_funnel]: its parameters give 10000000000 combinations (at most 1000000)"),
    ("ranges in three sections giving 16,000,000 runs", [("width = {2-4}", "width = {1-1000}"),
                                                         ("data_size = 200", "data_size = {1-2000}")],
     "the experiment gives 16000000 runs (at most 1000000)"),
    ("`width =` (empty value)", [("width = {2-4}", "width =")], "[mlp_funnel] width: empty value"),
    ("`key = w{depth}` (unknown placeholder)", [("key = mlp_funnel", "key = w{depth}")],
     "[mlp_funnel] key: unknown placeholder '{depth}'"),
    ("the same key twice in a section", [("length = 4", "length = 4\nlength = 5")],
     "[mlp_funnel] length: duplicate key"),
    ("the same section twice", [("[mlp_funnel]", "[dataset_OR]")], "[dataset_OR]: duplicate section"),
    ("text before the first section", [("[PROCESS]", "hello\n[PROCESS]")], "text before the first [section]"),
    ("a line without `=`", [("length = 4", "length 4")], "cannot parse 'length 4'"),
    ("two sections defining the same variant", [("[mlp_funnel]", "[dataset_OR2]\ntype = dataset\n"
                                                 "class = dataset_OR\npath_to_class = ./dataset.py\n"
                                                 "key = data_{class}\nbatch_size = 1\ndata_size = 200\n"
                                                 "train_prop = 0.8\n\n[mlp_funnel]")],
     "[dataset_OR] and [dataset_OR2] define the same variant"),
]

# Files given where an ini is expected: (input, what to write at config.ini, message excerpt).
FILE_CASES = [
    ("the ini file does not exist", None, "config.ini: file not found"),
    ("the ini path is a folder", "folder", "config.ini: cannot read"),
    ("the ini is not UTF-8 text", b"\xff\xfe\x00binary", "config.ini: cannot read"),
    ("the ini file is empty", b"", "missing required section [PROCESS]"),
]

# Commands on a built database of the tutorial (all runs pending); `corrupt.db` holds random bytes,
# `folder/` is a folder, `file` a plain file. (input, argv, message excerpt).
COMMAND_CASES = [
    ("plotloss: the database path is a folder", ["mosaic_plotloss", "folder", "out.pdf", "-id", "all"],
     "folder: not a Mosaic database"),
    ("plotloss: a corrupted database", ["mosaic_plotloss", "corrupt.db", "out.pdf", "-id", "all"],
     "corrupt.db: not a Mosaic database"),
    ("metaplot: a corrupted database", ["mosaic_metaplot", "corrupt.db", "out.png", "dataset_OR", "test_loss"],
     "corrupt.db: not a Mosaic database"),
    ("export: a corrupted database", ["mosaic_export", "corrupt.db", "out"], "corrupt.db: not a Mosaic database"),
    ("status: a corrupted file given as the ini", ["mosaic_status", "corrupt.db"], "corrupt.db: cannot read"),
    ("status: an ini that does not exist", ["mosaic_status", "nothere.ini"], "nothere.ini: file not found"),
    ("plotloss: `-id 99` matches no run", ["mosaic_plotloss", "database.db", "out.pdf", "-id", "99"],
     "no runs selected"),
    ("plotloss: `-param width 99` matches no run",
     ["mosaic_plotloss", "database.db", "out.pdf", "-param", "width", "99"], "no runs selected"),
    ("plotloss: `-id x-y`", ["mosaic_plotloss", "database.db", "out.pdf", "-id", "x-y"], "bad run ids 'x-y'"),
    ("plotloss: `-id ٣` (a non-ASCII digit)", ["mosaic_plotloss", "database.db", "out.pdf", "-id", "٣"],
     "bad run ids '٣'"),
    ("plotloss: `-plot_size 0`", ["mosaic_plotloss", "database.db", "out.pdf", "-id", "all", "-plot_size", "0"],
     "-plot_size must be at least 1"),
    ("plotloss: `-status finished` (unknown status)",
     ["mosaic_plotloss", "database.db", "out.pdf", "-status", "finished"],
     "argument -status: invalid choice: 'finished'"),
    ("metaplot: a dataset no run has", ["mosaic_metaplot", "database.db", "out.png", "nosuch", "test_loss"],
     "no finished run with dataset 'nosuch'"),
    ("metaplot: an unknown value", ["mosaic_metaplot", "database.db", "out.png", "dataset_OR", "accuracy"],
     "unknown value 'accuracy'"),
    ("rerun: `-id 999` matches no run", ["mosaic_rerun", "config.ini", "database.db", "-id", "999"],
     "no run matches the selection"),
    ("run: the database path is a folder", ["mosaic_run", "config.ini", "folder"],
     "folder: is a folder; give a database file path"),
    ("rekey: the database path is a folder", ["mosaic_rekey", "config.ini", "folder"],
     "folder: is a folder; give a database file path"),
    ("savedb: the output is a folder", ["mosaic_savedb", "folder", "--ini", "config.ini"],
     "folder: is a folder; give a database file path"),
    ("export: the output folder cannot be created", ["mosaic_export", "database.db", "file/out"],
     "file/out: cannot create the folder"),
]

# Runs whose classes misbehave: (input, data class, model class, message excerpt of the job's last line).
# Each is one `python -m mosaic.run.job` (the training job Snakemake starts); the classes are in
# tests/e2e/test_bad_input.py (BAD_CLASSES). The job exits 1 and writes the traceback to the run's error.txt.
RUN_CASES = [
    ("a data class without prepare()", "NoPrepare", "Affine", "[data] NoPrepare: a data class needs a prepare()"),
    ("prepare() raises", "PrepareRaises", "Affine", "ValueError: cannot read the data set"),
    ("a data class raising in __init__", "InitRaises", "Affine", "RuntimeError: bad init"),
    ("prepare() returns one loader", "OneLoader", "Affine",
     "[data] OneLoader: OneLoader.prepare returned a DataLoader; expected (train_loader, test_loader)"),
    ("a loader of (x, y, z) batches", "Triples", "Affine",
     "a data loader gave a batch of 3 items; each batch must be (inputs, targets)"),
    ("an empty loader", "EmptyLoader", "Affine", "a data loader is empty"),
    ("a model class without forward()", "Toy", "NoForward", "[model] NoForward: a model class needs a forward()"),
    ("forward() raises", "Toy", "ForwardRaises", "RuntimeError: boom in forward"),
    ("a constructor argument found nowhere", "Toy", "NeedsArg", "constructor argument 'depth' is neither"),
    ("a model without parameters", "Toy", "NoParams", "the model modules have no parameters to optimize"),
    ("a detached output (the loss needs no grad)", "Toy", "Detached", "the loss does not require grad"),
    ("the run folder cannot be created (a file is in the way)", "Toy", "Affine", "cannot create its folder"),
]

# `mosaic_run` on the tutorial (small_settings: 4 runs) where a class would fail every run: caught once before
# anything is launched (mosaic/run/preflight.py), exit status 2, no run folder, no database.
# (input, [(old text, new text), ...] applied to the ini, each to its first occurrence, the message's start); the
# classes are in tests/e2e/test_bad_input.py (PREFLIGHT_CLASSES, written as bad.py).
PREFLIGHT_CASES = [
    ("`widht = {2-3}` (a misspelled constructor argument)", [("width = {2-3}", "widht = {2-3}")],
     "config.ini: [mlp_funnel]: mlp_funnel (mlp.py) needs constructor argument 'width', neither in the section nor"
     " in the info() of the classes before it (found 'widht': did you mean 'width'?)"),
    ("forward() raises", [("class = mlp_funnel\npath_to_class = mlp.py", "class = Raises\npath_to_class = bad.py")],
     "bad.py:11: RuntimeError: boom in forward (pre-flight of run 1, dataset_OR(1,200,0.8) | Raises(4,2): nothing"
     " was launched; --no-preflight skips this check)"),
    ("prepare() returns one loader", [("class = dataset_OR\npath_to_class = dataset.py",
                                       "class = OneLoader\npath_to_class = bad.py")],
     "run 1 [dataset_OR] OneLoader: OneLoader.prepare returned a DataLoader; expected (train_loader, test_loader)"
     " or (train_loader, validation_loader, test_loader) (pre-flight of run 1, OneLoader(1,200,0.8) |"
     " mlp_funnel(4,2): nothing was launched; --no-preflight skips this check)"),
    ("a constructor argument missing where the file does not say (a base class from another file)",
     [("class = mlp_funnel\npath_to_class = mlp.py", "class = Brick\npath_to_class = bad.py"),
      ("length = 4\nwidth = {2-3}", "width = {2-3}")],
     "run 1 [mlp_funnel] Brick: constructor argument 'length' is neither in its section nor in run_info (known: "),
]

# Outcomes that are results, not errors: (input, what happens).
RESULT_CASES = [
    ("the loss becomes NaN (forward returns NaN)",
     "the run stops at that epoch and is recorded as done with `diverged` set; its log says"
     " `run N diverged at epoch E`; the job exits 0 (a diverging architecture is a result to compare)"),
]


def cell(text):
    return text.replace("|", "\\|")


def markdown():
    """The RELIABILITY.md table of every case."""
    lines = [START, "", "| # | input | message (excerpt) |", "|---|---|---|"]
    number = 0
    sections = (
        ("ini", [(case[0], case[-1]) for case in INI_CASES]),
        ("file", [(case[0], case[2]) for case in FILE_CASES]),
        ("command", [(case[0], case[2]) for case in COMMAND_CASES]),
        ("run", [(case[0], case[3]) for case in RUN_CASES]),
        ("pre-flight", [(case[0], case[2]) for case in PREFLIGHT_CASES]),
    )
    for kind, cases in sections:
        for text, message in cases:
            number += 1
            lines.append(f"| {number} | {kind}: {cell(text)} | `{cell(message)}` |")
    lines.append("")
    for text, outcome in RESULT_CASES:
        lines.append(f"Not an error: {text}: {outcome}.")
    lines += ["", END]
    return "\n".join(lines)


def write():
    text = RELIABILITY.read_text() if RELIABILITY.exists() else "# Reliability\n\n## Bad input\n\n"
    if START in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: markdown(), text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + markdown() + "\n"
    RELIABILITY.write_text(text)


if __name__ == "__main__":
    write()
