"""Benchmarks that print ratios against a baseline measured in the same run.

Shared machines are noisy, so an absolute number means little on its own; every metric here is
paired with something a user would otherwise use (SQLite row-by-row inserts, a polling loop, a
plain function call, ...) measured moments apart in the same process. Run ``python -m bench``
(or ``make bench``); see ``docs/bench.md``.

Each ``bench/bench_*.py`` module exposes ``run(quick: bool) -> list[dict]``; the harness in
``bench/__main__.py`` discovers them.
"""
