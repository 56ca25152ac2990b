"""Training throughput: images per second in float32 and in bfloat16 autocast (channels-last).

Times forward + backward + Adam steps of each network on random batches (after warm-up), in
each precision in turn, in one run. ``depth`` sizes the plain U-Net (``unet``); the
encoders have their own.
"""

from __future__ import annotations

import time

from bench.harness import benchmark


def _images_per_second(precision: str, cfg, steps: int, batch: int, tile: int) -> float:
    import torch

    from geoseg.models.registry import create_model
    from geoseg.runtime import autocast, resolve_device
    from geoseg.train.losses import get_loss

    device = resolve_device("auto")
    torch.manual_seed(0)
    model = create_model(cfg).to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = get_loss("dice")
    x = torch.randn(batch, 3, tile, tile, device=device).contiguous(memory_format=torch.channels_last)
    target = (torch.rand(batch, tile, tile, device=device) > 0.9).long()
    ones = torch.ones(batch, tile, tile, device=device)

    def step():
        with autocast(device, precision):
            loss = loss_fn(model(x), target, ones, ones)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t)


@benchmark("speed")
def train_speed(steps: int = 20, batch: int = 8, tile: int = 256, width: int = 16, depth: int = 4,
                norm: str = "batch", encoders: tuple[str, ...] = ("efficientnet-lite0",)) -> dict:
    """Training images/s of each network in fp32 and (where the machine has it) bf16."""
    import torch

    from geoseg.config import RESNET_LEVELS
    from geoseg.models.unet import UNetConfig
    from geoseg.runtime import cpu_has_bf16, tune_allocator

    tune_allocator()  # as geoseg train does
    fast = "bf16" if torch.cuda.is_available() or cpu_has_bf16() else None
    figures: dict = {"threads": torch.get_num_threads()}
    for encoder in encoders:
        cfg = UNetConfig(depth=depth if encoder == "unet" else RESNET_LEVELS, width=width, norm=norm, encoder=encoder)
        fp32 = _images_per_second("fp32", cfg, steps, batch, tile)
        figures[f"{encoder}_fp32_images_per_s"] = fp32
        if fast:
            bf = _images_per_second(fast, cfg, steps, batch, tile)
            figures[f"{encoder}_bf16_images_per_s"] = bf
            figures[f"{encoder}_bf16_speedup"] = bf / fp32
    return figures
