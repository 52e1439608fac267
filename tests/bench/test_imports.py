"""bench.imports measures real interpreters: every layer adds modules, and the node's own import is the last."""

from __future__ import annotations

from bench.imports import LAYERS, measure, table


def test_each_layer_is_measured_in_a_fresh_interpreter() -> None:
    rows = measure()
    assert [r[0] for r in rows] == [label for label, _ in LAYERS]
    modules = [r[2] for r in rows]
    assert modules == sorted(modules) and len(set(modules)) == len(modules)  # each layer loads something new
    assert all(rss > 5 for _, rss, _ in rows)
    text = table(rows)
    assert text.splitlines()[-1].startswith("| the node's own modules (services.node) |")
