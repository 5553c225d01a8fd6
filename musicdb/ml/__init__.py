"""Supervised experiments: splits, evaluation, models as skops files, predictions."""
