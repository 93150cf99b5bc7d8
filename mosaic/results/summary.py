"""The comparison in plain words, what mosaic_compare prints first and mosaic_run prints at its end: per
dataset key, who beats whom in one sentence each (the centers, how many times lower or higher, the share of
replicate pairs won, the Holm p-value the verdict uses), what is not proven yet and how many replicates
would settle it, then the groups ranked with their center, its interval and n. The numbers are those of
compare.py's rows and descriptions (the verdict's); the full tables are compare_outputs.report's."""

from mosaic.results.compare import ARCHITECTURES, variants_family
from mosaic.results.stats import ALPHA, CONFIDENCE
from mosaic.results.verdict import p_text, probability, short_number, solved_note, solves

SCALE_CENTER = {"log": "geometric mean", "linear": "mean"}


def _short(label, model_key):
    """'width=64' for a variant of the model key already named in the sentence."""
    return label[len(model_key) + 1:] if label.startswith(model_key + " ") else label


def _times(row, from_best=True):
    """'35× lower' (log scale) or '0.12 lower' (linear): the best group against the other one, or the other
    one against the best (from_best=False)."""
    effect = row["effect"]  # the other group against the best: a ratio (log scale) or a difference
    if effect is None:
        return ""
    lower = (effect >= 1 if row["scale"] == "log" else effect >= 0) == from_best
    word = "lower" if lower else "higher"
    if row["scale"] == "log":
        factor = effect if effect >= 1 else 1 / effect
        return f"{factor:#.2g}× {word}" if factor < 10 else f"{factor:.0f}× {word}"
    return f"{short_number(abs(effect))} {word}"


def _pairs(row, n_best, n_other):
    """'won all 9 replicate pairs' / 'won 7 of 9 replicate pairs', from the best group's side."""
    if row["superiority"] is None:
        return ""
    total = n_best * n_other
    won = (1 - row["superiority"]) * total
    return f"won all {total} replicate pairs" if won == total else f"won {won:g} of {total} replicate pairs"


def sentence(row, best, bd, other, od, value):
    """One plain sentence: the best group against one other group (a row of compare.py's)."""
    name = _short(other.label, best.model_key)
    if od["n"] == 0:
        return f"{other.label}: no finished {value} yet."
    if od["n"] < 2 or bd["n"] < 2:
        return f"{other.label} vs {best.label}: not tested (a group needs 2 finished replicates)."
    p = row["welch_p_holm"]
    if p is None:
        return f"{other.label} vs {best.label}: every replicate gives the same value; nothing to test."
    rope = "" if row["p_rope_equal"] is None else f"; P(practically equal) {probability(row['p_rope_equal'])}"
    if p < ALPHA:
        details = "; ".join(part for part in (_times(row), _pairs(row, bd["n"], od["n"]), f"p = {p_text(p)}") if part)
        return (f"{best.label} beats {name}: {value} {short_number(bd['center'])} vs {short_number(od['center'])} "
                f"({details}){rope}.")
    n = f"n = {bd['n']}" if bd["n"] == od["n"] else f"n = {bd['n']} and {od['n']}"
    centers = f"{short_number(od['center'])} vs {short_number(bd['center'])}"
    text = (f"{other.label} vs {_short(best.label, other.model_key)}: {value} {centers} "
            f"({_times(row, from_best=False)}), not proven at {n} (p = {p_text(p)})")
    low, high = row["replicates_needed_low"], row["replicates_needed_high"]
    if low is not None:
        span = f"{low} or more" if high is None else f"{low}" if low == high else f"about {low}-{high}"
        text += f"; {span} replicates each would settle it"
    return text + rope + "."


def _ranking(comparison):
    center = SCALE_CENTER[comparison.scale]
    rows = [("rank", "group", f"{comparison.value} ({center})", f"{CONFIDENCE:.0%} interval", "n")]
    for rank, (group, d) in enumerate(comparison.groups, start=1):
        if not d["n"]:
            rows.append(("-", group.label, "", "", "0"))
            continue
        interval = "" if d["ci_low"] is None else f"{short_number(d['ci_low'])} to {short_number(d['ci_high'])}"
        left = group.n_failed + group.n_diverged
        rows.append((str(rank), group.label, short_number(d["center"]), interval,
                     f"{d['n']}" + (f" ({left} failed or diverged)" if left else "")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def dataset_summary(comparison):
    """The lines of one dataset key: heading, sentences, ranking."""
    direction = "higher" if comparison.higher else "lower"
    lines = [f"{comparison.dataset_key}: {comparison.value}, {direction} is better"]
    described = comparison.groups
    with_values = [(g, d) for g, d in described if d["n"]]
    if len(with_values) < 2 or described[0][1]["n"] < 2:
        lines.append(f"  {comparison.verdict}.")
        return lines + _ranking(comparison)
    best, bd = described[0]
    by_label = {group.label: (group, d) for group, d in described}
    keys = {group.model_key for group, _ in described}
    families = [ARCHITECTURES, variants_family(best.model_key)] if len(keys) > 1 else [
        variants_family(best.model_key)]
    for family in families:
        for row in comparison.comparisons:
            if row["family"] == family and row["versus"] == best.label:
                other, od = by_label[row["label"]]
                lines.append("  " + sentence(row, best, bd, other, od, comparison.value))
    if not comparison.higher and comparison.rope is None:
        headline = [(g, d) for g, d in described if g is best or any(
            row["family"] == families[0] and row["label"] == g.label for row in comparison.comparisons)]
        solvers = [(g, d) for g, d in headline if solves(g, d, comparison.solved_below)]
        note = solved_note(solvers, comparison.value, comparison.solved_below)
        if note:
            lines.append(f"  {note[2].upper()}{note[3:]}: the gap may not matter in practice.")
    return lines + _ranking(comparison)


def summary(comparisons, ranks=None):
    """The plain-words comparison of every dataset key, as text."""
    parts = ["\n".join(dataset_summary(comparison)) for comparison in comparisons]
    if ranks is not None:
        order = ", ".join(f"{label} ({rank:.2g})" for label, rank in zip(ranks.labels, ranks.average))
        parts.append(f"across {ranks.n_datasets} dataset keys, average ranks: {order}")
    return "\n\n".join(parts) + "\n"


def _selection_line(group, value):
    """'mlp_brick: lr = 0.01 selected of 4 settings (mean val_loss 0.012; the others 0.02 to 0.5)'."""
    from mosaic.results.tuning import setting_text, validation_name

    name = validation_name(value)
    if group.selected is None:
        return f"{group.label}: no setting with a {name}: left out of the tuned comparison."
    others = sorted(group.mean_validation(s) for s in group.settings
                    if s != group.selected and group.mean_validation(s) is not None)
    spread = "" if not others else f"; the other {short_number(others[0])}" if len(others) == 1 else (
        f"; the others {short_number(others[0])} to {short_number(others[-1])}")
    count = len(group.settings)
    return (f"{group.label}: {setting_text(group.selected)} selected of {count} setting{'s' * (count != 1)} "
            f"(mean {name} {short_number(group.mean_validation(group.selected))}{spread}).")


def shared_sentence(tuned):
    """Whether the comparison at one shared setting names the tuned winner: 'at lr = 0.01 mlp_funnel wins;
    each at its best lr, mlp_brick wins', or that it agrees; '' when nothing can be said."""
    from mosaic.results.tuning import names_text, setting_text

    comparison = tuned.comparison
    if comparison is None or not tuned.shared or not comparison.groups[0][1]["n"]:
        return ""
    best = comparison.groups[0][0].label
    names = names_text(tuned.names)
    differ = {}
    for setting, winner in tuned.shared:
        if winner is not None and winner != best:
            differ.setdefault(winner, []).append(f"at {setting_text(setting)}")
    if not differ:
        where = f"at every shared {names}" if len(tuned.names) == 1 else f"at {setting_text(tuned.shared[0][0])}"
        return f"{where} {best} wins too: the comparison at one shared setting agrees."
    clauses = [f"{' and '.join(places)} {winner} wins" for winner, places in differ.items()]
    return f"{'; '.join(clauses)}; each at its best {names}, {best} wins."


def tuned_summary(tuned_comparisons):
    """The tuned comparison in plain words: per dataset key, the setting each group got and of how many,
    the comparison at those settings (dataset_summary's lines), whether one shared setting names another
    winner, and who is ahead at which tuning budget."""
    from mosaic.results.tuning import budget_reading, names_text, validation_name

    parts = []
    for tuned in tuned_comparisons:
        value = tuned.comparison.value if tuned.comparison else "the value"
        lines = [f"{tuned.dataset_key}: each architecture at its best {names_text(tuned.names)}, selected on "
                 f"{validation_name(value) if tuned.comparison else 'validation'}"]
        lines += [f"  {_selection_line(group, value)}" for group in tuned.groups]
        if tuned.comparison is not None:
            lines += ["  " + line for line in dataset_summary(tuned.comparison)]
        if sentence := shared_sentence(tuned):
            lines.append(f"  {sentence}")
        if reading := budget_reading(tuned.curves, tuned.comparison is not None and tuned.comparison.higher):
            lines.append(f"  Tuning budget (expected best {validation_name(value)} over k settings drawn): {reading}.")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
