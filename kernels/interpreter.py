"""Whether Triton's interpreter runs the kernels: `TRITON_INTERPRET=1`, read by triton when it is first imported.

The interpreter runs the very same kernels on the CPU through numpy (slow, for checking, not training). A module of
its own, without torch or triton, so that anything may ask before either is imported.
"""

import os

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
