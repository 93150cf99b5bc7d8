"""The experiment launched from a folder: .mosaic/experiment.json (runfiles.SESSION_FILE), written by mosaic_run.

mosaic_status, mosaic_savedb, mosaic_pause and mosaic_resume find the experiment through it.
"""

import os

from mosaic import runfiles
from mosaic.errors import ConfigError, UsageError


def save(ini, database, plots, cores=None, profile=None):
    os.makedirs(runfiles.STATE_DIR, exist_ok=True)
    state = {
        "ini": os.path.abspath(ini),
        "database": os.path.abspath(database),
        "plots": os.path.abspath(plots),
        "workdir": os.getcwd(),
        "cores": cores,
        "profile": profile,
    }
    runfiles.write_json(runfiles.SESSION_FILE, state)
    return state


def load(ini=None):
    """The saved session, or one made from `ini`; MosaicError when neither is there."""
    if os.path.exists(runfiles.SESSION_FILE):
        state = runfiles.read_json(runfiles.SESSION_FILE)
        if ini is None or os.path.abspath(ini) == state["ini"]:
            return state
    if ini is not None:
        return {"ini": os.path.abspath(ini), "database": None, "plots": None, "workdir": os.getcwd()}
    default = default_ini()
    if default:
        return {"ini": default, "database": None, "plots": None, "workdir": os.getcwd()}
    raise UsageError(
        f"no experiment was launched from {os.getcwd()} (no {runfiles.SESSION_FILE}); give the ini file"
    )


def saved(ini, name):
    """A setting (`profile`, `cores`) of the saved session when it is the experiment of `ini`, else None:
    mosaic_rerun and mosaic_rekey keep what the user chose for mosaic_run."""
    if not os.path.exists(runfiles.SESSION_FILE):
        return None
    state = runfiles.read_json(runfiles.SESSION_FILE)
    return state.get(name) if state.get("ini") == os.path.abspath(ini) else None


def default_ini():
    """The ini named by config/config.yaml in this folder (plain `snakemake` from the repository)."""
    import yaml

    path = os.path.join("config", "config.yaml")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(path, " ".join(str(error).split())) from None
    value = config.get("ini") if isinstance(config, dict) else None
    return os.path.abspath(str(value)) if value else None
