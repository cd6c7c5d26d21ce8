"""The reliability suite: hostile peers, extreme input, storms, leaks, secrets, fuzzing.

A package so that its modules (and its ``conftest``) get names of their own
(``reliability.conftest``): the suite's modules import helpers from the
top-level ``tests/conftest.py`` as ``conftest``, as every other test does.
"""
