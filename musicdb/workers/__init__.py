"""Where analysis runs: worker processes that survive a crash or a hang, or Dask."""
