"""The errors users see: each type carries its fields and formats one line, 'PLACE: what went wrong'.

The command line maps each type to an exit status in one table (EXIT_CODES, below).
"""


def where(path, section=None, key=None):
    """Format an error location: 'config.ini: [mlp] width'."""
    text = str(path)
    if section is not None:
        text += f": [{section}]"
        if key is not None:
            text += f" {key}"
    return text


class MosaicError(Exception):
    """A user-facing error; str(error) is a single line: '<place>: <message>', or the message alone."""

    def __init__(self, message):
        self.message = str(message)
        super().__init__(self.message)

    def place(self):
        """Where the error is (a file, a section and key, a run), or None; subclasses say."""
        return None

    def __str__(self):
        text = " ".join(line.strip() for line in self.message.splitlines() if line.strip())
        place = self.place()
        return f"{place}: {text}" if place else text


class UsageError(MosaicError):
    """A command used wrongly: a bad option value, a selection matching nothing, an output that is an input."""


class FileError(MosaicError):
    """An error about one file or folder, named first in the message."""

    def __init__(self, path, message):
        self.path = path
        super().__init__(message)

    def place(self):
        return str(self.path)


class ConfigError(FileError):
    """A bad experiment file (ini, config.yaml): the file, and the section and key when known."""

    def __init__(self, path, message, section=None, key=None):
        self.section, self.key = section, key
        super().__init__(path, message)

    def place(self):
        return where(self.path, self.section, self.key)


class UserClassError(FileError):
    """A user's class file that cannot be read, parsed or used: the file, and the class when known."""

    def __init__(self, path, message, class_name=None):
        self.class_name = class_name
        super().__init__(path, message)


class DatabaseError(FileError):
    """A database file that is missing, not a Mosaic database, or cannot be written."""


class BusyError(FileError):
    """Another process works on the same files (a folder's experiment, a run being trained)."""


class RunError(MosaicError):
    """Runs that failed, or the workflow engine failing; run_ids names the runs (may be empty)."""

    def __init__(self, message, run_ids=()):
        self.run_ids = tuple(run_ids)
        super().__init__(message)


class PausedError(MosaicError):
    """The experiment was paused before every run was trained; remaining counts the runs left."""

    def __init__(self, remaining, message):
        self.remaining = remaining
        super().__init__(message)


# The exit status of each kind of failure, most specific first. argparse's usage errors exit 2 too.
EXIT_CODES = (
    (RunError, 1),  # runs failed, or Snakemake did
    (BusyError, 3),  # another process works in the same folder or run
    (PausedError, 4),  # paused with runs left to train: mosaic_resume finishes them
    (MosaicError, 2),  # bad input: usage, ini, class file, database
)


def exit_code(error):
    return next(code for kind, code in EXIT_CODES if isinstance(error, kind))
