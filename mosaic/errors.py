"""The one exception type users see: a one-line message naming file, section and key, or the run."""


class MosaicError(Exception):
    """A user-facing error; str(error) is a single line."""


def where(path, section=None, key=None):
    """Format an error location: 'config.ini: [mlp] width'."""
    text = str(path)
    if section is not None:
        text += f": [{section}]"
        if key is not None:
            text += f" {key}"
    return text
