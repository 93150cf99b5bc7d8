"""mosaic_status's text: a summary line (counts, time left), then the runs Done, failed (Error: one traceback
per distinct error) and Running; a section without runs is left out. The runs and their states come from
mosaic/results/status.py."""

import os
import re
import sysconfig

COUNTED = (("done", "done"), ("running", "running"), ("error", "failed"), ("pending", "pending"))
FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+), in ')
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # mosaic/, two floors up from this file
LIBRARIES = tuple(os.path.join(os.path.realpath(path), "") for path in (
    PACKAGE, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]))


def scientific(value):
    return "nan" if value is None else f"{value:.3E}"


def seconds(value):
    """A duration in seconds with its unit: '12.3 s'."""
    return f"{value:.1f} s"


def counts_text(counts):
    """'8 done, 2 running, 2 failed, 12 pending' from {status: count}, the non-zero counts only."""
    return ", ".join(f"{counts[status]} {word}" for status, word in COUNTED if counts.get(status))


def database_counts(db_path):
    """{status: count} of the runs of a Mosaic database."""
    from mosaic.results.database import open_db

    db = open_db(db_path)
    try:
        return dict(db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"))
    finally:
        db.close()


def id_ranges(ids):
    """Sorted run ids as mosaic_rerun's -id reads them: [1, 2, 3, 7] -> '1-3,7'."""
    ranges = []
    for run_id in sorted(ids):
        if ranges and ranges[-1][1] == run_id - 1:
            ranges[-1][1] = run_id
        else:
            ranges.append([run_id, run_id])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def time_left(states):
    """'about 3 min left': the mean duration of the done runs times the runs left (a running run counts its
    epochs left), spread over the runs running now (the experiment's parallel slots while it runs). None
    when nothing runs (nothing moves) or no run with a duration is done yet (no measure)."""
    durations = [s.result["duration_s"] for s in states if s.status == "done" and s.result.get("duration_s")]
    running = [s for s in states if s.status == "running"]
    if not durations or not running:
        return None
    left = sum(s.status == "pending" for s in states)
    left += sum(1 - s.progress[0] / s.progress[1] if s.progress and s.progress[1] else 1 for s in running)
    estimate = sum(durations) / len(durations) * left / len(running)
    if estimate < 90:
        return f"about {max(10, round(estimate, -1)):.0f} s left"
    if estimate < 90 * 60:
        return f"about {estimate / 60:.0f} min left"
    return f"about {estimate / 3600:.1f} h left"


def summary(states):
    """'24 runs: 8 done, 2 running, 2 failed, 12 pending; about 3 min left' (the time left when known)."""
    counts = {}
    for state in states:
        counts[state.status] = counts.get(state.status, 0) + 1
    eta = time_left(states)
    return f"{len(states)} runs: {counts_text(counts)}" + (f"; {eta}" if eta else "")


def frames(error):
    """The (path, line) of every frame of a traceback's text, outermost first."""
    return [(m["path"], int(m["line"])) for m in map(FRAME.match, error.splitlines()) if m]


def last_line(error):
    lines = [line for line in error.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


def where(error):
    """' at models.py:21': the innermost frame in the user's code (not in mosaic, Python or an installed
    package), else the innermost frame; '' without a traceback."""
    found = frames(error)
    if not found:
        return ""
    own = [frame for frame in found if not os.path.realpath(frame[0]).startswith(LIBRARIES)]
    path, line = (own or found)[-1]
    return f" at {os.path.basename(path)}:{line}"


def error_groups(failed):
    """The failed (run, error text) pairs grouped by error: the same frames and the same exception type (the
    message may differ: it often holds a value of the run); groups in the order of their first run."""
    groups = {}
    for run, error in failed:
        found, exception = tuple(frames(error)), last_line(error)
        groups.setdefault((found, exception.split(":")[0] if found else exception), []).append((run, error))
    return list(groups.values())


def error_lines(group):
    """A group's first run and its traceback, then (for several runs) one line naming the error and the runs:
    '6 runs (3-8): RuntimeError: mat1 and mat2 shapes cannot be multiplied at models.py:21'."""
    run, error = group[0]
    lines = [f"\t[{run.run_id}] {run.label}", *(f"\t\t{line}" for line in error.rstrip().splitlines())]
    if len(group) > 1:
        messages = {last_line(text) for _, text in group}
        exception = last_line(error)
        named = exception if len(messages) == 1 else f"{exception.split(':')[0]} ({len(messages)} messages)"
        ids = id_ranges(other.run_id for other, _ in group)
        lines.append(f"\t{len(group)} runs ({ids}): {named}{where(error)}")
    return lines


def done_line(run, result):
    line = f"\t[{run.run_id}] train_loss={scientific(result.get('train_loss'))}" \
           f"\ttest_loss={scientific(result.get('test_loss'))}"
    if result.get("duration_s") is not None:
        line += f"\tduration={seconds(result['duration_s'])}"
    return line + ("\tdiverged" if result.get("diverged") else "")


def render(listing, states):
    """The summary line, then the Done, Error and Running sections of the runs of `listing` (a
    status.Listing), each left out when it has no run."""
    ordered = [(run, states[run.run_hash]) for run in listing.runs]
    done = [done_line(run, state.result) for run, state in ordered if state.status == "done"]
    failed = [(run, state.error or "") for run, state in ordered if state.status == "error"]
    running = [f"\t[{run.run_id}] {run.label}\t"
               + (f"epoch {state.progress[0]}/{state.progress[1]}" if state.progress else "starting")
               for run, state in ordered if state.status == "running"]
    waiting = sum(state.status in ("pending", "running") for _, state in ordered)
    lines = [(f"round {listing.round} (auto replicates): waiting for {waiting} runs; " if listing.round > 1 and waiting
              else "") + summary([state for _, state in ordered])]
    for name, section in (("Done", done), ("Error", [line for group in error_groups(failed)
                                                     for line in error_lines(group)]), ("Running", running)):
        if section:
            lines += [name, *section]
    return "\n".join(lines)
