"""2-D maps of the library: projections and their stored runs, label colours."""
