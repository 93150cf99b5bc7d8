"""The static class scan (mosaic/experiment/classscan.py): which names a class file defines, without importing it."""

import pytest

from mosaic.errors import UserClassError
from mosaic.experiment.classscan import check_class, defined_classes, find_class


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


def test_a_missing_class_is_named_with_the_classes_the_file_defines(tmp_path):
    path = tmp_path / "models.py"
    path.write_text("import torch\n\n\nclass _Base:\n    pass\n\n\nclass Linear(_Base):\n    pass\n\n\n"
                    "if True:\n    class MLP(_Base):\n        pass\n\n\ndef MLPP():\n    pass\n")
    assert defined_classes(str(path)) == ["_Base", "Linear", "MLP"]
    with pytest.raises(UserClassError) as caught:
        check_class(str(path), "MLPQ", "config.ini: [mlp] class", "./models.py")
    assert str(caught.value) == "config.ini: [mlp] class: models.py defines no class 'MLPQ'; it defines: Linear, MLP"
    check_class(str(path), "MLPP", "config.ini: [mlp] class", "models.py")  # a function is a callable class


@pytest.mark.parametrize("source, listed", [
    ("class _Only:\n    pass\n", "it defines: _Only"),
    ("def f():\n    pass\n", "it defines no class"),
])
def test_private_classes_are_listed_only_when_there_are_no_others(tmp_path, source, listed):
    path = tmp_path / "models.py"
    path.write_text(source)
    with pytest.raises(UserClassError) as caught:
        check_class(str(path), "Net", "config.ini: [net] class", "models.py")
    assert str(caught.value) == f"config.ini: [net] class: models.py defines no class 'Net'; {listed}"
