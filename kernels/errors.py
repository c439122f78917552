"""Errors the kernels raise for their callers to report."""


class KernelUnavailableError(RuntimeError):
    """A backend was asked for where it cannot run (e.g. a Triton kernel with no GPU and no interpreter)."""
