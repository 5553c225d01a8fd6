"""Imported once by the forkserver before it forks ingest workers (workers.pool.LocalPool).

Importing librosa and loading numba's compiled kernels (from its on-disk cache in the user's
cache folder, musicdb.analysis.jitcache: LLVM start-up, ~1 s) happen here once, instead of
once in every worker; a first run compiles them here, under the cache's lock. BLAS is held to
one thread: the pool already runs a worker per core, and two workers each spinning up BLAS
threads on two cores cost 30 % more CPU for the same files (measured: 53.7 vs 41.3 CPU s on
1.9 h of music). The allocator keeps freed block arrays for the next block
(musicdb.workers.allocator); forked workers inherit both settings.
"""

import numpy as np
from threadpoolctl import threadpool_limits

from musicdb.workers.allocator import keep_freed_memory

threadpool_limits(1)
keep_freed_memory()

from musicdb.analysis.analyse import summarise_sets  # noqa: E402 - after the BLAS limit, on purpose
from musicdb.analysis.features import FrameParams, frame_features  # noqa: E402
from musicdb.analysis.jitcache import one_compiler  # noqa: E402

with one_compiler():  # a first run compiles here, one process at a time
    summarise_sets(frame_features(np.random.default_rng(0).uniform(-0.1, 0.1, 22050)
                                  .astype(np.float32)), ("default",), [], FrameParams())
