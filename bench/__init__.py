"""The benchmark harness and the ``segalloc`` command line."""
