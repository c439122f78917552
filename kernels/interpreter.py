"""Whether Triton's interpreter runs the kernels: `TRITON_INTERPRET=1`, read by triton when it is first imported.

The interpreter runs the very same kernels on the CPU through numpy (slow, for checking, not training). A module of
its own, without torch or triton, so that anything may ask before either is imported.
"""

import os

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"


def interpreter_problem(triton_version: str) -> str | None:
    """Why this Triton's interpreter cannot run the kernels beside this NumPy, or None where it can.

    Before 3.7 the interpreter reads a loop bound computed in a kernel (`range(lo, hi)`, hi from the program id) as
    int() of a one-element array, which recent NumPy refuses (deprecated in 1.25; an error in 2.4 and 2.5): every
    kernel with such a loop stops with "only 0-dimensional arrays can be converted to Python scalars". Triton 3.7
    takes the element out first. Compiled for a GPU, the same kernels build with either
    (experiments/gpu/lent-machine-versions.txt)."""
    import re
    import warnings

    import numpy

    major_minor = re.match(r"(\d+)\.(\d+)", triton_version)  # "3.6.0", "3.6.0+git9844da9", "3.10.0rc1"
    if major_minor is None or tuple(map(int, major_minor.groups())) >= (3, 7):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            int(numpy.ones(1, dtype=numpy.int32))
        except TypeError:
            return (
                f"Triton {triton_version}'s interpreter cannot run the kernels with NumPy {numpy.__version__} "
                "(it takes int() of one-element arrays, which this NumPy refuses): install triton>=3.7, or run "
                "on a CUDA GPU"
            )
    return None
