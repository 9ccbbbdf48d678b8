"""Small helpers over ``torch.distributed``: every function is a no-op / identity in a single process."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def init_from_env(backend: str | None = None) -> bool:
    """Initialise the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1); returns whether it did.

    The backend is NCCL with CUDA, gloo otherwise; each rank uses the GPU ``LOCAL_RANK``.
    """
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def all_gather_padded(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Gather a tensor whose first dimension may differ between ranks; returns one tensor per rank."""
    if not is_distributed():
        return [tensor]
    world = get_world_size()
    size = torch.tensor([tensor.shape[0]], device=tensor.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded.contiguous())
    return [g[:n] for g, n in zip(gathered, counts, strict=True)]


def all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Average the gradients of parameters that live outside DDP (e.g. a loss's class centres)."""
    if not is_distributed():
        return
    world = get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank ``src``'s buffers (BN running statistics drift apart after each rank's last local forward)."""
    if not is_distributed():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src)
