"""torch.compile takes the model whole through every attention backend: no graph break, the same numbers.

`fullgraph=True` turns any graph break into an error, so a compile that succeeds proves there is none. The
backend is AOTAutograd without Inductor (`aot_eager`): it traces forward and backward into graphs exactly as
Inductor receives them, and runs them without generating code (seconds, not minutes, on a CPU). The Triton
kernels run interpreted here; what only a GPU shows (Inductor, CUDA graphs) is in `make gpu-check`.
"""

import os
import warnings

import pytest
import torch

import kernels
from gpt.models import GPT

DEVICE = "cuda" if not kernels.INTERPRETING and torch.cuda.is_available() else "cpu"


def gradients(model: torch.nn.Module) -> list[torch.Tensor]:
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return grads


# phase 5, and phase 7 with every switch on (rotary embeddings and QK-norm act on q and k before the backend)
PHASE_7 = {"pos": "rope", "qk_norm": True, "mlp": "relu2", "tie_embeddings": False, "logit_softcap": 15.0,
           "value_embeddings": True, "zero_init_proj": False}  # fmt: skip


@pytest.mark.parametrize("switches", [{}, PHASE_7], ids=["phase5", "phase7"])
@pytest.mark.parametrize("backend", list(kernels.BACKENDS))
def test_the_model_compiles_whole_and_computes_what_it_does_eagerly(backend, switches, monkeypatch):
    """... and without a word from dynamo: its warnings reach every compile=true run's terminal."""
    monkeypatch.setattr(torch._dynamo.utils, "warn_once_cache", set())  # each says its piece once per process
    torch.manual_seed(0)
    # one block: the blocks are alike, and dynamo traces each anew (two take twice the time and prove nothing more)
    model = GPT(vocab_size=20, block_size=24, n_embd=32, n_head=2, n_layer=1, dropout=0.0, backend=backend, **switches)
    model.to(DEVICE)
    idx, targets = (torch.randint(0, 20, (2, 24), device=DEVICE) for _ in range(2))
    compiled = torch.compile(model.forward, backend="aot_eager", fullgraph=True)

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _, loss = compiled(idx, targets)
        loss.backward()
    assert not [f"{w.filename}: {w.message}" for w in said if f"{os.sep}_dynamo{os.sep}" in w.filename]
    compiled_grads = gradients(model)
    _, eager_loss = model(idx, targets)
    eager_loss.backward()
    # the same kernels on the same inputs; only the order of a few fp32 sums may differ
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-6)
    for got, want in zip(compiled_grads, gradients(model), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", kernels.TRITON_BACKENDS)
def test_the_triton_kernels_are_single_operators_in_the_compiled_graphs(backend):
    """Each Triton attention is one opaque custom operator forward and one backward, as torch.compile sees it."""
    q, k, v = (torch.randn(1, 2, 20, 16, device=DEVICE, requires_grad=True) for _ in range(3))
    graphs = []

    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    def keep(graph, example_inputs):
        graphs.append(graph)
        return make_boxed_func(graph.forward)

    attend = torch.compile(
        lambda q, k, v: kernels.attention(q, k, v, backend=backend),
        backend=aot_autograd(fw_compiler=keep, bw_compiler=keep),
        fullgraph=True,
    )
    attend(q, k, v).sum().backward()
    forward, backward = ([str(node.target) for node in g.graph.nodes if node.op == "call_function"] for g in graphs)
    name = kernels.BACKENDS[backend].function.split(":")[1]
    assert f"kernels.{name}.default" in forward
    assert f"kernels.{name}_backward.default" in backward
