"""How many replicates: decide after each round whether the verdict is decided, and which groups need more
(`multiplicity = auto`).

The method is a group-sequential design with a Lan-DeMets O'Brien-Fleming-type alpha-spending function over
a bounded number of looks. Look k is round k: every undecided group has min_n + k - 1 replicates, the
information fraction is t_k = (min_n + k - 1) / max_n, and the looks are at most K = max_n - min_n + 1.
The spending function alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)) spends almost nothing at the first
looks and nearly the whole alpha at the last one; the boundaries c_1..c_K are the ones under which a
standardized Brownian motion observed at t_1..t_K first leaves [-c_k, c_k] at look k with probability
alpha(t_k) - alpha(t_{k-1}) (computed once by seeded simulation). At look k a comparison beats when its
Holm-adjusted Welch p-value is below the nominal level 2 - 2 Phi(c_k) (the "p-value approach": Welch's t
on the comparison's scale, log for losses, turned into a p-value by its t distribution).

Why this one: the number of looks is bounded (max_n, or the budget), so a group-sequential design spends
the whole alpha over them and keeps nearly the power of a fixed design of max_n replicates, where
anytime-valid confidence sequences, made for unbounded looks, pay for that generality with much wider
intervals at the 3 to 10 replicates of a training experiment. O'Brien-Fleming-type spending does not
declare a winner on the first 3 replicates unless the difference is overwhelming, and stops early when
it is large. A budget (max_runs) that ends before max_n leaves the rest of alpha unspent: conservative.

The comparisons are J's headline family (compare.py): per dataset key, the best group of each model key
against the leader, Holm over every pair of those groups. A comparison is decided when it beats, or, with
a rope, when the probability of practical equivalence is above EQUAL (the Behrens-Fisher posterior of
stats.rope_probabilities), or when its groups reached max_n. Undecided groups get one more replicate per
round; the others keep their count. tests/results/test_sequential.py measures the false "beats" rate of
the whole procedure under the null by simulation, and its power and runs against fixed designs.

numpy and scipy are imported inside the functions that need them: importing this module stays cheap.
"""

import functools
import itertools
import math
from dataclasses import dataclass, field

from mosaic.errors import MosaicError
from mosaic.results.stats import ALPHA, POWER, holm, quiet, replicates_needed, rope_probabilities, transform

MIN_MULTIPLICITY = 3
MAX_MULTIPLICITY = 10
EQUAL = 0.95  # P(practically equal) above which a comparison is decided as equal
BOUNDARY_PATHS = 400_000
BOUNDARY_SEED = 20261205


@dataclass
class Decision:
    """What to do after a round: done, or the replicate counts each group should reach next."""

    done: bool
    round: int
    targets: dict  # {(dataset_key, group_label): replicates}
    reason: str  # 'decided', 'budget' (max_n or max_runs reached) or 'undecided'
    rows: list = field(default_factory=list)  # one dict per headline comparison
    runs: int = 0  # the runs counted so far
    families: dict = field(default_factory=dict)  # {dataset_key: (groups with >= 2 values, groups)}
    min_n: int = MIN_MULTIPLICITY  # the replicates of round 1: no fixed design is counted below them
    groups: dict = field(default_factory=dict)  # decide(): {dataset_key: [groups.Group decided on]}

    @property
    def fixed_runs(self):
        """About the runs a fixed design (every group at one multiplicity, at least min_n, Holm over the same
        family at ALPHA) would need for 80% power on the effects measured; None when one of them is too small
        or unknown. The effects measured when a round stops early are rather too large (the design stopped
        because they looked large), so this is, if anything, fewer runs than a fixed design really needs."""
        total = 0
        for dataset_key, (tested, size) in self.families.items():
            rows = [row for row in self.rows if row["dataset_key"] == dataset_key]
            per_group = _fixed_per_group(rows, ALPHA / max(1, tested * (tested - 1) // 2))
            if per_group is None:
                return None
            total += max(per_group, self.min_n) * size
        return total

    @property
    def text(self):
        """One line: how the adaptive design stopped (or where it stands) and what a fixed design needs."""
        plural = "s" if self.round > 1 else ""
        several = len({r["dataset_key"] for r in self.rows}) > 1  # then each comparison names its dataset key
        states = "; ".join(f"{r['dataset_key'] + ': ' if several else ''}{r['label']} {_STATE_WORDS[r['state']]}"
                           f" {r['versus']}" for r in self.rows)
        head = {
            "decided": f"decided after {self.round} round{plural} and {self.runs} runs",
            "budget": f"budget spent after {self.round} round{plural} and {self.runs} runs",
            "undecided": f"round {self.round}, {self.runs} runs: not decided yet",
        }[self.reason]
        fixed_runs = self.fixed_runs
        if not fixed_runs:
            fixed = "no fixed design of a reasonable size would separate them"
        elif fixed_runs <= self.runs and self.reason == "decided" and self.round == 1:
            fixed = f"a fixed design would have needed as many ({fixed_runs} runs at {self.min_n} replicates each)"
        else:
            fixed = (f"a fixed design with the same error rate would have needed about {fixed_runs} runs"
                     " for 80% power on the differences measured")
        return f"{head}: {states or 'nothing to compare'}; {fixed}"


_STATE_WORDS = {"beats": "beats", "worse": "is beaten by", "equal": "is practically equal to",
                "undecided": "is undecided against"}


@functools.lru_cache(maxsize=64)
def nominal_levels(min_n, max_n, alpha=ALPHA):
    """(p_1, ..., p_K): the two-sided nominal level of each look k (n = min_n + k - 1 replicates, up to
    max_n) of the O'Brien-Fleming-type Lan-DeMets design, from boundaries found by seeded simulation of
    a standardized Brownian motion at the looks' information fractions."""
    import numpy as np
    from scipy import stats

    if min_n == max_n:
        return (alpha,)
    fractions = np.arange(min_n, max_n + 1) / max_n
    spent = 2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / np.sqrt(fractions))
    spent[-1] = alpha
    rng = np.random.default_rng(BOUNDARY_SEED)
    steps = np.diff(np.concatenate([[0.0], fractions]))
    paths = np.cumsum(rng.standard_normal((BOUNDARY_PATHS, len(fractions))) * np.sqrt(steps), axis=1)
    z = np.abs(paths / np.sqrt(fractions))
    alive = np.ones(BOUNDARY_PATHS, bool)
    levels, previous = [], 0.0
    for k, total in enumerate(spent):
        crossings = int(round((total - previous) * BOUNDARY_PATHS))
        previous = total
        candidates = np.sort(z[alive, k])[::-1]
        bound = candidates[crossings] if crossings < candidates.size else 0.0
        alive &= z[:, k] <= bound
        levels.append(float(2 * stats.norm.sf(bound)))
    return tuple(levels)


def _welch_p(a, b):
    """Two-sided p-value of Welch's t-test of two groups given as (n, mean, variance); None where undefined."""
    from scipy import special

    (na, ma, va), (nb, mb, vb) = a, b
    if na < 2 or nb < 2 or not va / na + vb / nb > 0:
        return None
    va, vb = va / na, vb / nb
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return float(2 * special.stdtr(df, -abs(ma - mb) / math.sqrt(va + vb)))


def _hedges_g(a, b):
    """Standardized difference of two groups given as (n, mean, variance) (pooled std, small-sample
    corrected); None where undefined."""
    (na, ma, va), (nb, mb, vb) = a, b
    if na < 2 or nb < 2:
        return None
    pooled = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    return (ma - mb) / pooled * (1 - 3 / (4 * (na + nb) - 9)) if pooled > 0 else None


def _summary(array):
    """(n, mean, variance) of an array of values on the comparison's scale."""
    n = len(array)
    return n, float(array.mean()) if n else math.nan, float(array.var(ddof=1)) if n > 1 else math.nan


def _headline(members, higher):
    """(leader, [best of each other model key]) of one dataset key's {label: (model_key, array)}, by the
    mean on the scale among groups with >= 2 replicates (compare.py's order)."""
    order = sorted(
        (label for label, (_, x) in members.items() if len(x) >= 2),
        key=lambda label: (-members[label][1].mean() if higher else members[label][1].mean(), label),
    )
    best = {}
    for label in order:
        best.setdefault(members[label][0], label)
    keys = list(best.values())
    if len(keys) == 1:  # one model key: its variants are the family
        keys = [label for label in order if members[label][0] == members[keys[0]][0]]
    return (keys[0], keys[1:]) if keys else (None, [])


def _dataset_rows(dataset_key, members, look, options):
    """The headline comparisons of one dataset key at round `look`, each with its state."""
    higher, rope, levels = options
    leader, others = _headline(members, higher)
    if leader is None:
        return []
    family = [leader, *others]
    summary = {label: _summary(members[label][1]) for label in family}
    pairs = list(itertools.combinations(family, 2))
    with quiet():
        adjusted = dict(zip(pairs, holm([_welch_p(summary[a], summary[b]) for a, b in pairs])))
    level = levels[min(look, len(levels)) - 1]
    rows = []
    for label in others:
        xa, xb = members[label][1], members[leader][1]
        p = adjusted[(leader, label)]
        row = {"dataset_key": dataset_key, "label": label, "versus": leader, "n": len(xa), "n_versus": len(xb),
               "p_holm": p, "level": level, "p_equal": None, "g": _hedges_g(summary[label], summary[leader])}
        if p is not None and p < level:
            better = summary[label][1] > summary[leader][1] if higher else summary[label][1] < summary[leader][1]
            row["state"] = "beats" if better else "worse"
        elif rope is not None:
            with quiet():
                row["p_equal"] = rope_probabilities(xa, xb, rope, higher)[1]
            row["state"] = "equal" if (row["p_equal"] or 0) > EQUAL else "undecided"
        else:
            row["state"] = "undecided"
        rows.append(row)
    return rows


def _fixed_per_group(rows, alpha):
    """Replicates per group a fixed design (same family, Holm) would need for 80% power on the effects the
    headline comparisons found, None when one of them is too small or unknown."""
    needs = []
    for row in rows:
        if row["state"] == "equal":
            continue
        n = replicates_needed(row["g"], alpha, POWER) if row["g"] else None
        if n is None:
            return None
        needs.append(n)
    return max(needs, default=None)


def decide_values(groups_values, higher=False, rope=None, min_n=MIN_MULTIPLICITY, max_n=None, max_runs=None,
                  scale="linear", model_keys=None, counts=None, spent=None):
    """The Decision of the groups {(dataset_key, label): values} (the replicates with a value) on `scale`
    ("linear", or "log": rope a relative margin then). `model_keys`: {(dataset_key, label): model_key}
    (default: the label); `counts`: {(dataset_key, label): runs so far}, the runs that count against the
    budget and that targets start from (default: the number of values); `spent`: the runs that count against
    max_runs when others than those of the groups do (the unselected settings of a tuned comparison)."""
    import numpy as np

    max_n = max_n or MAX_MULTIPLICITY
    if not 2 <= min_n <= max_n:
        raise MosaicError(f"[MONITOR] min_multiplicity = {min_n} must be >= 2 and <= max_multiplicity ({max_n})")
    model_keys = model_keys or {}
    counts = counts or {key: len(values) for key, values in groups_values.items()}
    if rope is not None and scale == "log":
        rope = math.log1p(rope)
    by_dataset = {}
    for (dataset_key, label), values in groups_values.items():
        array = transform(values, scale) if len(values) else np.zeros(0)
        by_dataset.setdefault(dataset_key, {})[label] = (model_keys.get((dataset_key, label), label), array)
    levels = nominal_levels(min_n, max_n)
    look = 1 + max(0, max(counts.values(), default=min_n) - min_n)
    rows = [row for key, members in sorted(by_dataset.items())
            for row in _dataset_rows(key, members, look, (higher, rope, levels))]
    undecided = {(r["dataset_key"], label) for r in rows if r["state"] == "undecided"
                 for label in (r["label"], r["versus"])}
    growing = {key for key in undecided if counts.get(key, 0) < max_n}
    targets = {key: counts.get(key, 0) + (key in growing) for key in groups_values}
    runs = sum(counts.values()) if spent is None else spent
    families = {key: (sum(1 for _, x in members.values() if len(x) >= 2), len(members))
                for key, members in by_dataset.items()}
    if not undecided:
        return Decision(True, look, targets, "decided", rows, runs, families, min_n)
    if not growing or (max_runs is not None and runs + len(growing) > max_runs):
        return Decision(True, look, dict(counts), "budget", rows, runs, families, min_n)
    return Decision(False, look, targets, "undecided", rows, runs, families, min_n)



def decide(db_path, value="test_loss", higher=None, rope=None, min_n=MIN_MULTIPLICITY, max_n=None, max_runs=None,
           tune=None):
    """The Decision of the database's runs on `value` (decide_values on compare.py's groups and scale):
    the groups counted by their runs (failed, diverged and pending ones included), tested on their values.
    `tune` (the training settings the workflow tunes, a list or 'lr,weight_decay'; None or empty: none): each
    architecture group is then its runs at the setting selected on validation (mosaic_compare --tune), and
    only those grow; every run counts against max_runs; without a validation value to select on, each setting
    is a variant, as without `tune`. Decision.groups holds the groups decided on."""
    from mosaic.results.compare import choose_scale
    from mosaic.results.groups import load_groups
    from mosaic.results.values import higher_is_better

    if higher is None:
        higher = higher_is_better(value)
    names = [n.strip() for n in tune.split(",")] if isinstance(tune, str) else list(tune or ())
    spent, groups = None, None
    if names:
        from mosaic.results.tuning import load_tuned

        try:
            tuned = [t for members in load_tuned(db_path, value, names).values() for t in members]
        except MosaicError:  # no validation value to select on (the tune rule refuses): each setting a variant
            tuned = None
        if tuned is not None:
            spent = sum(g.n_ended + g.n_unfinished for t in tuned for g in t.settings.values())
            groups = [t.settings[t.selected] for t in tuned if t.select(higher) is not None]
    if groups is None:
        groups = [group for members in load_groups(db_path, value).values() for group in members]
    scale = choose_scale("auto", [v for group in groups for v in group.values], higher)
    keys = {id(g): (g.dataset_key, g.label) for g in groups}
    decision = decide_values(
        {keys[id(g)]: g.values for g in groups}, higher, rope, min_n, max_n, max_runs, scale,
        model_keys={keys[id(g)]: g.model_key for g in groups},
        counts={keys[id(g)]: g.n_ended + g.n_unfinished for g in groups}, spent=spent,
    )
    for group in groups:
        decision.groups.setdefault(group.dataset_key, []).append(group)
    return decision
