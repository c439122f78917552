"""PyTorch's fused `F.scaled_dot_product_attention`: the reference the hand-written backends are checked against."""

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import flop_registry, register_flop_formula, sdpa_backward_flop_count, sdpa_flop_count


def sdpa_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, dropout_p: float = 0.0
) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p)


# torch's FlopCounterMode counts sdpa's CUDA kernels but not the flash attention it runs on a CPU: counted here as
# those are (kernels/custom_op.py), so that every backend's FLOPs compare on any machine. (A torch that counts them
# itself keeps its own formula: a second registration would be refused.)
CPU_FLASH = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
CPU_FLASH_BACKWARD = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward
if CPU_FLASH not in flop_registry:

    @register_flop_formula(CPU_FLASH)
    def cpu_flash_flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(q_shape, k_shape, v_shape)


if CPU_FLASH_BACKWARD not in flop_registry:

    @register_flop_formula(CPU_FLASH_BACKWARD)
    def cpu_flash_backward_flops(grad_out_shape, q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_backward_flop_count(grad_out_shape, q_shape, k_shape, v_shape)
