"""Storage backends, each a segalloc plugin registered through the ``segalloc`` entry-point group."""
