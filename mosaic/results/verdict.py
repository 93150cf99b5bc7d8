"""The verdict of mosaic_compare in words, one line per dataset key: every architecture placed (the leading
tier, not separable from the best, with the replicates a test would need to separate them; each one
significantly behind, with the size of the gap and its interval), the replicates that do not vary, the
failures of the best group (a group that fails significantly more often is not called the winner without
saying so), and when both groups solve the task by a stated rule. No number here is computed: the
statistics come from compare.py's rows (stats.compare_pair) and descriptions (stats.describe)."""

from mosaic.results.stats import ALPHA, CONFIDENCE

NEGLIGIBLE = 1e-3  # the default rule: a final loss below this fraction of its first-epoch value solves the task
SMALL_RATIO = 2.0  # two centers within this factor: a gap that matters little once both solve the task


def short_number(x):
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 10:
        return f"{x:#.2g}"  # 0.50, 0.0067, 2.0
    return f"{x:.0f}" if 10 <= abs(x) < 1e4 else f"{x:.1e}"


def p_text(p):
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}".replace("e-0", "e-")


def _factor(x):
    if x < 10:
        return f"{x:#.2g}"  # 2.0, 1.4, 0.93
    return f"{x:.0f}" if x < 1000 else f"{x:.1e}".replace("e+0", "e+")


def probability(p):
    """A probability as printed: never 1.00 nor 0.00, which a finite sample cannot show."""
    if p > 0.995:
        return "> 0.99"
    if p < 0.005:
        return "< 0.01"
    return f"= {p:.2f}"


def gap(row, best, other, value):
    """("best's test_loss is 2.1× lower than other's", "95% CI 1.4-3.0×"): the row's effect (other against
    best: a ratio on the log scale, a difference on the linear one) seen from the best group; the interval
    '' when there is none."""
    effect, low, high = row["effect"], row["effect_ci_low"], row["effect_ci_high"]
    ci = f"{CONFIDENCE:.0%} CI"
    if effect is None or (low is not None and high is None) or (high is not None and low is None):
        return f"{best}'s {value} differs from {other}'s by more than a float can hold", "no interval"
    if row["scale"] == "log":
        lower = effect >= 1  # the best's geometric mean is below the other's
        text = f"{best}'s {value} is {_factor(effect if lower else 1 / effect)}× {'lower' if lower else 'higher'}"
        ends = None if low is None else (low, high) if lower else (1 / high, 1 / low)
        interval = "" if ends is None else f"{ci} {_factor(ends[0])}-{_factor(ends[1])}×"
    else:
        lower = effect >= 0
        text = f"{best}'s {value} is {short_number(abs(effect))} {'lower' if lower else 'higher'}"
        ends = None if low is None else (low, high) if lower else (-high, -low)
        interval = "" if ends is None else f"{ci} {short_number(ends[0])} to {short_number(ends[1])}"
    return f"{text} than {other}'s", interval


def needed(row):
    """'about 6-40 replicates per group would separate them (a rough guide)', or '' when unknown."""
    low, high = row["replicates_needed_low"], row["replicates_needed_high"]
    if low is None:
        return ""
    if high is None:
        return f"{low} or more replicates per group might separate them (a rough guide: no upper bound)"
    span = f"{low}" if low == high else f"{low}-{high}"
    return f"about {span} replicates per group would separate them (a rough guide)"


def _n_text(a, b):
    return f"n = {a}" if a == b else f"n = {a} and {b}"


def _left_out(group, with_failures=True):
    """'1 failed, 2 diverged': the runs of a group that give no value ('' when none)."""
    counts = [(group.n_missing, "without a value"), (group.n_unfinished, "pending")]
    if with_failures:
        counts = [(group.n_failed, "failed"), (group.n_diverged, "diverged"), *counts]
    return ", ".join(f"{count} {what}" for count, what in counts if count)


def _constant(group, d):
    return (f"the {d['n']} replicates of {group.label} all give the same value: was one seed used for all?")


def _failures(best, rows, by_label):
    """', but 2 of 4 A runs diverged' (and, when significantly more often than a group compared, that A
    cannot be called the winner without it); '' when the best group lost no run."""
    if not best.n_bad:
        return ""
    what = [f"{count} of {best.n_ended} {best.label} runs {word}"
            for count, word in ((best.n_diverged, "diverged"), (best.n_failed, "failed")) if count]
    text = f"; but {' and '.join(what)}"
    worse = [row for row in rows if row["fisher_p"] is not None and row["fisher_p"] < ALPHA
             and (by_label[row["label"]].failure_rate or 0) < best.failure_rate]
    if worse:
        row = worse[0]
        other = by_label[row["label"]]
        text += (f", significantly more often than {other.label} ({other.n_bad} of {other.n_ended}, Fisher "
                 f"p = {p_text(row['fisher_p'])}): {best.label} is the best only among the runs that ended")
    return text


def _solved_rule(value, solved_below, first):
    if solved_below is not None:
        return f"{value} below {solved_below:g} (--solved-below)"
    return (f"{value} below 1/{1 / NEGLIGIBLE:.0f} of its first-epoch value, about {short_number(first)} "
            "(--solved-below sets another)")


def solves(group, d, solved_below):
    if d["center"] is None:
        return False
    if solved_below is not None:
        return d["center"] < solved_below
    if not group.first_epoch:
        return False
    first = sum(group.first_epoch) / len(group.first_epoch)
    return first > 0 and d["center"] <= NEGLIGIBLE * first


def solved_note(solvers, value, solved_below):
    """'; by the rule ..., a and b both solve the task (9.4e-12 and 1.9e-11)': '' unless the best and
    another group do."""
    if len(solvers) < 2:
        return ""
    firsts = [y for group, _ in solvers for y in group.first_epoch]
    rule = _solved_rule(value, solved_below, sum(firsts) / len(firsts) if firsts else None)
    names = [group.label for group, _ in solvers]
    centers = [d["center"] for _, d in solvers]
    who = f"{names[0]} and {names[1]} both" if len(names) == 2 else f"{', '.join(names[:-1])} and {names[-1]} all"
    text = f"; by the rule '{rule}', {who} solve the task ({' and '.join(short_number(c) for c in centers)})"
    if max(centers) <= SMALL_RATIO * min(centers):
        text += f", within {SMALL_RATIO:g}× of each other"
    return text


def _statement(row, best, bd, other, od, value):
    """(kind, text) of one group against the best: 'tier', 'behind' or 'untested'."""
    if od["n"] == 0:
        return "untested", f"{other.label} has no finished {value} ({_left_out(other)})"
    if od["n"] < 2:
        return "untested", f"{other.label} has a single replicate: it cannot be tested against {best.label}"
    p = row["welch_p_holm"]
    if p is None:
        return "untested", (
            f"{_constant(best, bd)} And so do the {od['n']} of {other.label}: nothing can be tested between them"
        )
    size, interval = gap(row, best.label, other.label, value)
    if p < ALPHA:
        return "behind", f"{best.label} beats {other.label} on {value}: {size} ({interval}, p = {p_text(p)}, Holm)"
    text = (
        f"no significant difference between {best.label} and {other.label} on {value} at "
        f"{_n_text(bd['n'], od['n'])} (p = {p_text(p)}, Holm; {size}, {interval})"
    )
    guide = needed(row)
    return "tier", text + (f": {guide}" if guide else "")


def write_verdict(described, rows, value, higher, scale, rope=None, solved_below=None):
    """The verdict's line. `described`: [(Group, description)] best first; `rows`: the comparisons of the
    headline family (the best group of each other model key against the best one, or the variants of the
    only model key), as compare.py makes them."""
    with_values = [(group, d) for group, d in described if d["n"]]
    if not with_values:
        return f"no finished replicate has a {value}: nothing to compare"
    if len(with_values) == 1:
        return f"only {with_values[0][0].label} has finished replicates: nothing to compare"
    best, bd = described[0]
    if bd["n"] < 2:
        return f"no group has 2 finished replicates of {value}: nothing can be tested; run at least 2 of each"
    by_label = {group.label: group for group, _ in described}
    descriptions = {group.label: d for group, d in described}
    placed = {"tier": [], "behind": [], "untested": []}
    for row in rows:
        other = by_label[row["label"]]
        kind, text = _statement(row, best, bd, other, descriptions[other.label], value)
        if rope is not None and kind != "untested" and row["p_rope_equal"] is not None:
            margin = f"{rope:g} (relative)" if scale == "log" else f"{rope:g}"
            text += (f"; with a practical-equivalence margin of {margin}: P({best.label} better) "
                     f"{probability(row['p_rope_worse'])}, P(practically equal) {probability(row['p_rope_equal'])}, "
                     f"P({other.label} better) {probability(row['p_rope_better'])}")
        if (row["fisher_p"] is not None and row["fisher_p"] < ALPHA
                and (other.failure_rate or 0) > (best.failure_rate or 0)):
            text += (f"; {other.label} failed or diverged significantly more often ({other.n_bad} of "
                     f"{other.n_ended} runs against {best.n_bad} of {best.n_ended}, "
                     f"Fisher p = {p_text(row['fisher_p'])})")
        placed[kind].append(text)
    text = "; ".join(placed["tier"] + placed["behind"] + placed["untested"])
    text += _failures(best, rows, by_label)
    if not higher and rope is None:
        members = [best] + [by_label[row["label"]] for row in rows]
        text += solved_note([(g, descriptions[g.label]) for g in members
                              if solves(g, descriptions[g.label], solved_below)], value, solved_below)
    members = [(best, bd)] + [(by_label[row["label"]], descriptions[row["label"]]) for row in rows]
    constant = [_constant(g, d) for g, d in members if d["constant"] and not _untested_pair(g, best, rows)]
    if constant:
        text += "; " + "; ".join(constant)
    lost = [f"{group.label}: {_left_out(group, group is not best)}" for group, d in members
            if d["n"] and _left_out(group, group is not best)]
    if lost:
        text += f" (runs left out: {'; '.join(lost)})"
    return text


def _untested_pair(group, best, rows):
    """Whether `group`'s constant replicates are already told (it and the best both constant, untested)."""
    for row in rows:
        if row["welch_p_holm"] is None and row["constant_a"] and row["constant_b"] and group.label in (
                row["label"], best.label):
            return True
    return False
