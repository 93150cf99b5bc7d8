"""Tests for naming a dataset key by a part of it (mosaic.results.values.dataset_keys_named): metaplot
takes 'xor_n240' for the key 'xor_n240 | standardize', and refuses a part found in several keys."""

import sqlite3

import pytest

from mosaic.errors import MosaicError
from mosaic.ops.cli import mosaic_metaplot
from mosaic.results.plots import metaplot_data
from mosaic.results.values import dataset_keys_named

KEYS = ["xor_n240 | standardize", "xor_n480 | standardize", "spiral"]


def test_a_key_its_class_or_one_unambiguous_part():
    assert dataset_keys_named("spiral", KEYS) == ["spiral"]
    assert dataset_keys_named("xor_n240", KEYS) == ["xor_n240 | standardize"]  # a stage of the chain
    assert dataset_keys_named("n480", KEYS) == ["xor_n480 | standardize"]  # inside a key
    assert dataset_keys_named("moons", KEYS) == []
    runs = [("xor_n240 | standardize", {"Xor"}), ("xor_n480 | standardize", {"Xor"}), ("spiral", {"Spiral"})]
    assert dataset_keys_named("Xor", KEYS, runs) == ["xor_n240 | standardize", "xor_n480 | standardize"]
    with pytest.raises(MosaicError, match=r"'standardize' is part of several dataset keys: xor_n240 \| standardize, "
                                          r"xor_n480 \| standardize; give one of them"):
        dataset_keys_named("standardize", KEYS)
    with pytest.raises(MosaicError, match="'xor' is part of several dataset keys"):
        dataset_keys_named("xor", KEYS)


def test_metaplot_takes_a_stage_of_a_data_chain(db_path, tmp_path, capsys):
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE runs SET dataset_key = 'xor_n240 | standardize' WHERE dataset_key = 'data_dataset_OR'")
        db.execute("UPDATE runs SET dataset_key = 'xor_n480 | standardize' WHERE dataset_key = 'data_dataset_AND'")
    assert list(metaplot_data(db_path, "xor_n240", "test_loss")) == ["xor_n240 | standardize"]
    assert list(metaplot_data(db_path, "dataset_OR", "test_loss")) == ["xor_n240 | standardize"]  # its class
    with pytest.raises(MosaicError, match="several dataset keys"):
        metaplot_data(db_path, "standardize", "test_loss")
    out = tmp_path / "out.png"
    assert mosaic_metaplot([db_path, str(out), "xor_n240", "test_loss"]) == 0
    assert out.exists()
    assert mosaic_metaplot([db_path, str(tmp_path / "two.png"), "standardize", "test_loss"]) == 2
    assert "xor_n240 | standardize, xor_n480 | standardize" in capsys.readouterr().err
