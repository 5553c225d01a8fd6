"""Imported once by the forkserver that `--scheduler local:N`'s Dask workers fork from
(musicdb.workers.cluster), before any thread exists: one malloc arena for every thread to
come, then the local pool's own preload (BLAS held to one thread, freed memory kept, librosa
imported and the compiled kernels loaded). Each worker then starts with all of it done,
instead of importing and loading it again."""

from musicdb.workers.arena import one_malloc_arena

one_malloc_arena()

import musicdb.workers.preload  # noqa: E402, F401 - its import is the setup
