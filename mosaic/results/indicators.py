"""The three run indicators (README.md, "Commands"; config/README.md), computed from the train and test loss histories.

T, V = train and test loss per epoch, n epochs, k = max(1, n // 10):
    overfit      = |V[n-1] - T[n-1]| / (max(T ∪ V) - min(T ∪ V)), 0 when the range is 0
    trainability = mean(V)
    slope        = (T[n-1] - T[n-1-k]) / k, undefined when n < 2
An indicator that cannot be computed (no epochs, too few epochs, a nan or inf among the values it
reads) is None: never nan, never an exception.
"""

import math
import textwrap

# What each indicator means, one sentence each: mosaic_metaplot --help, the report's caption of the
# comparison plots (workflow/report/metaplot.rst) and the README say exactly this.
DEFINITIONS = {
    "overfit": "the absolute gap between the final test and train losses divided by the range of all the run's "
    "train and test losses (max - min over every epoch; 0 when that range is 0), so from 0 to 1: near 0 the "
    "model does as well on unseen data as on its training data, higher means the final losses lie further "
    "apart (overfitting when the test loss is the higher).",
    "trainability": "the mean of the test loss over all epochs (the area under the test curve per epoch), so "
    "lower means the model learns faster and better.",
    "slope": "the change of the train loss T per epoch over the last k = max(1, epochs // 10) epochs, "
    "(T[last] - T[last - k]) / k: near 0 training has converged, clearly negative more epochs would still help.",
}
UNDEFINED = ("Each is n/a (NULL in the database) when it cannot be computed: no epochs, a single epoch for "
             "slope, or a nan or inf among the losses it reads.")


def help_text(width=100):
    """The definitions as a command's help shows them: one indented paragraph each."""
    lines = ["the indicators (VALUE overfit, trainability or slope), computed from each run's loss curves:"]
    for name, sentence in DEFINITIONS.items():
        lines += textwrap.wrap(sentence, width, initial_indent=f"  {name:<14}", subsequent_indent=" " * 16)
    return "\n".join([*lines, "", *textwrap.wrap(UNDEFINED, width)])


def indicators(train, test):
    """{'overfit', 'trainability', 'slope'} of one run; each a float or None."""
    return {
        "overfit": overfit(train, test),
        "trainability": trainability(test),
        "slope": slope(train),
    }


def _all_finite(values):
    return all(map(math.isfinite, values))


def overfit(train, test):
    values = list(train) + list(test)
    if not train or not test or not _all_finite(values):
        return None
    spread = max(values) - min(values)
    if spread == 0:
        return 0.0
    return abs(test[-1] - train[-1]) / spread


def trainability(test):
    if not test or not _all_finite(test):
        return None
    return math.fsum(test) / len(test)


def slope(train):
    n = len(train)
    if n < 2:
        return None
    k = max(1, n // 10)
    last, earlier = train[n - 1], train[n - 1 - k]
    if not _all_finite((last, earlier)):
        return None
    return (last - earlier) / k
