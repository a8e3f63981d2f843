"""Allocation algorithms, each a segalloc plugin registered through the ``segalloc`` entry-point group."""
