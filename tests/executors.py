"""Choosing the executor the real CLI builds, for tests that count or patch analyses."""

from __future__ import annotations

import contextlib

import pytest

import musicdb.workers.executor


def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ingest, whatever its --workers, analyses in this process, in scan order."""
    monkeypatch.setattr(musicdb.workers.executor, "open_executor",
                        lambda *args, **kwargs: contextlib.nullcontext(
                            musicdb.workers.executor.InProcess()))
