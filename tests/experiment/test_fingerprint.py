"""Code fingerprints (mosaic/experiment/fingerprint.py): what a class file does, not how it is written."""

from mosaic.experiment.fingerprint import source_fingerprint


def test_the_fingerprint_ignores_comments_layout_and_docstrings_only():
    code = 'class A:\n    """Doc."""\n    def f(self, x):\n        return x + 1\n'
    same = '# hello\nclass A:\n    """Other doc."""\n\n    def f(self, x):  # add one\n        return (x+1)\n'
    assert source_fingerprint(code) == source_fingerprint(same)
    for changed in (code.replace("x + 1", "x + 2"), code.replace("f(self", "g(self"), code + "B = 1\n"):
        assert source_fingerprint(changed) != source_fingerprint(code)
    assert source_fingerprint("def (:") != source_fingerprint("def ((:")
