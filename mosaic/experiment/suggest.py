"""Suggestions for a misspelled name: the closest of the names known. Standard library only."""

import difflib


def closest(word, candidates, cutoff=0.75):
    """The candidate closest to `word` (one differing only in case first), or None."""
    same_but_case = [candidate for candidate in sorted(candidates) if candidate.lower() == word.lower()]
    close = same_but_case or difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(word, candidates, cutoff=0.75):
    """' (did you mean 'x'?)' for the closest candidate to a misspelled `word`, or ''."""
    match = closest(word, candidates, cutoff)
    return f" (did you mean {match!r}?)" if match else ""


def found_instead(wanted, present, cutoff=0.75):
    """' (found 'epoch': did you mean 'epochs'?)' when a name close to the missing `wanted` is present, or ''."""
    match = closest(wanted, present, cutoff)
    return f" (found {match!r}: did you mean {wanted!r}?)" if match else ""
