"""`mosaic_export`: a results database as files other tools open (CSV, Parquet, TensorBoard).

csv, parquet   runs.EXT (one typed column a parameter), losses.EXT (long form), params.EXT
tensorboard    one folder a run, `run_0001_<hash>`, with the loss curves as scalars (`loss/train`, `loss/test`)
               and the run's parameters as hparams (with its final losses as the hparams metrics)
Parquet needs pyarrow (`pip install "mosaic-snakemake[parquet]"`); TensorBoard needs the tensorboard package
(`[tensorboard]`).
"""

import math
import os

from mosaic.errors import MosaicError
from mosaic.results.frames import load

FORMATS = ("csv", "parquet", "tensorboard")
TABLE_EXTENSIONS = (".csv", ".parquet")  # file names: an output folder named so is refused


def export(db_path, out_dir, fmt):
    """Write the database's results under `out_dir` (a folder; a name ending .csv or .parquet is refused
    before the database is read, unless such a folder exists) in `fmt`; returns the paths written."""
    if fmt not in FORMATS:
        raise MosaicError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    extension = os.path.splitext(out_dir.rstrip(os.sep))[1].lower()
    if extension in TABLE_EXTENSIONS and not os.path.isdir(out_dir):
        raise MosaicError(f"{out_dir}: the export is a folder (runs, losses and params files in it), not a "
                          f"{extension} file: name a folder")
    results = load(db_path)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise MosaicError(f"{out_dir}: cannot create the folder: {error.strerror}") from None
    if fmt == "tensorboard":
        return export_tensorboard(results, out_dir)
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise MosaicError('parquet export needs pyarrow: pip install "mosaic-snakemake[parquet]"') from None
    written = []
    for name in ("runs", "losses", "params"):
        frame = getattr(results, name)
        path = os.path.join(out_dir, f"{name}.{fmt}")
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            if name == "params":  # one column of mixed int/float/text values: Parquet wants one type
                frame = frame.assign(value=frame["value"].map(str))
            frame.to_parquet(path, index=False)
        written.append(path)
    return written


def run_folder(run):
    return f"run_{int(run['run_id']):04d}_{run['run_hash']}"


def hparam_value(value):
    """A value TensorBoard's hparams accept (bool, int, float, text), or None to leave it out."""
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return str(value)


def export_tensorboard(results, out_dir):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MosaicError(
            'TensorBoard export needs the tensorboard package: pip install "mosaic-snakemake[tensorboard]"'
        ) from None
    written = []
    hparam_columns = [c for c in results.runs.columns if "." in c] + ["pipeline", "replicate", "seed", "status"]
    losses = {run_id: frame for run_id, frame in results.losses.groupby("run_id")}
    for _, run in results.runs.iterrows():
        folder = os.path.join(out_dir, run_folder(run))
        with SummaryWriter(log_dir=folder) as writer:
            curve = losses.get(run["run_id"])
            if curve is not None:
                for row in curve.itertuples():
                    for tag, value in (("loss/train", row.train_loss), ("loss/test", row.test_loss)):
                        if value is not None and math.isfinite(value):
                            writer.add_scalar(tag, value, int(row.epoch))
            hparams = {}
            for column in hparam_columns:
                value = hparam_value(run[column])
                if value is not None:
                    hparams[column] = value
            metrics = {f"final/{name}": float(run[name]) for name in ("train_loss", "test_loss")
                       if hparam_value(run[name]) is not None}
            # run_name=".": the hparams go into the run's own folder, not a timestamped subfolder
            writer.add_hparams(hparams, metrics, run_name=".")
        written.append(folder)
    return written
