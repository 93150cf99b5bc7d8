"""What workflow/rules/common.smk checks before the workflow is built: the config against its schema, the
metaplot values, the ini. A problem ends the workflow with one line, no traceback, and the exit status the
command line gives it (errors.EXIT_CODES)."""

import sys

from mosaic.errors import MosaicError, exit_code
from mosaic.experiment import load_experiment


def exit_with(message):
    """A one-line error, no traceback, and the command line's exit status for it."""
    print(f"mosaic: {message}", file=sys.stderr)
    sys.exit(exit_code(message) if isinstance(message, MosaicError) else 1)


def load_or_exit(ini):
    """The experiment, or a one-line error (no traceback) and the command line's exit status for it."""
    try:
        return load_experiment(ini)
    except MosaicError as error:
        exit_with(error)


def config_error_line(error):
    """The one-line message for a config value that the schema rejects (`error`: the WorkflowError
    raised by snakemake.utils.validate while handling jsonschema's ValidationError)."""
    cause = error
    while cause is not None:
        if hasattr(cause, "absolute_path") and hasattr(cause, "message"):
            key = ".".join(str(part) for part in cause.absolute_path)
            return f"config{' ' + key if key else ''}: {cause.message} (config/README.md lists the keys)"
        cause = cause.__cause__ or cause.__context__
    return str(error).strip().splitlines()[0]


def check_metaplot_values(values):
    """None, or the one-line error for a name of `metaplot_values` that metaplot does not know."""
    from mosaic.results.values import VALUE_COLUMNS

    unknown = [value for value in values if value not in VALUE_COLUMNS]
    if unknown:
        return (f"config metaplot_values: unknown value '{unknown[0]}': expected one of "
                + ", ".join(VALUE_COLUMNS))
    return None
