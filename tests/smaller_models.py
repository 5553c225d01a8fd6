"""Fewer trees for tests whose assertions do not depend on how many trees vote.

`musicdb evaluate` fits the pruning forest (models.ranker, 200 trees) on every fold, and the
default ensemble holds a 300-tree forest that its model file then stores; a test that checks
how folds, album effects, storage or messages work, not what the forests score, spends most
of its time on those trees. The same estimators with fewer trees take the same code paths and
write the same types into a model file (test_evaluate checks every model's types).
"""

from __future__ import annotations

import pytest

from musicdb.ml import models

RANKER_TREES = 20
FEWER_TREES = {"rf": {"model__n_estimators": 20}, "hgb": {"model__max_iter": 10},
               "ensemble": {"model__rf__n_estimators": 20, "model__hgb__max_iter": 10}}


def fewer_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every model the real CLI builds from now on, and its pruning forest, with fewer trees."""
    build, ranker = models.build, models.ranker

    def smaller_build(name: str, **kwargs):
        return build(name, **kwargs).set_params(**FEWER_TREES.get(name, {}))

    def smaller_ranker(**kwargs):
        return ranker(**kwargs).set_params(n_estimators=RANKER_TREES)

    monkeypatch.setattr(models, "build", smaller_build)
    monkeypatch.setattr(models, "ranker", smaller_ranker)
