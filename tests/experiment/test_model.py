"""The data model (mosaic/experiment/model.py): looking a run up, and the lists of [PROCESS] fields that the
hash, the spec and the database use."""

import dataclasses

import pytest

from mosaic.experiment.model import PROCESS_IDENTITY_FIELDS, PROCESS_PARAMETER_FIELDS, Process
from tests.fakes import TUTORIAL, load_ini


def test_run_by_hash(tmp_path):
    experiment = load_ini(tmp_path, TUTORIAL)
    for run in experiment.runs:
        assert experiment.run_by_hash(run.run_hash) is run
    with pytest.raises(KeyError):
        experiment.run_by_hash("0" * 16)


def test_the_process_field_lists_name_fields_of_process():
    names = {field.name for field in dataclasses.fields(Process)}
    assert set(PROCESS_IDENTITY_FIELDS) <= set(PROCESS_PARAMETER_FIELDS) <= names
    assert "epochs" not in PROCESS_IDENTITY_FIELDS  # more epochs continue a run, they do not make another one
