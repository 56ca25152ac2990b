"""Training throughput: images per second in float32 and in bfloat16 autocast (channels-last).

    python bench/train_speed.py [--steps 20] [--batch 8] [--tile 256] [--width 16] [--depth 4]
                                [--encoders unet,resnet18,resnet34]

Times forward + backward + Adam steps of each network on random batches (after warm-up),
in each precision in turn, in one run; prints images/s, seconds a step and the speed-up.
``--depth`` sizes the plain U-Net (``unet``); the ResNet encoders have their own.
"""

from __future__ import annotations

import argparse
import time

import torch

from geoseg.config import RESNET_LEVELS
from geoseg.models.registry import make_network
from geoseg.models.unet import UNetConfig
from geoseg.runtime import autocast, cpu_has_bf16, resolve_device, tune_allocator
from geoseg.train.losses import get_loss


def network(encoder: str, args) -> UNetConfig:
    depth = args.depth if encoder == "unet" else RESNET_LEVELS
    return UNetConfig(depth=depth, width=args.width, norm=args.norm, encoder=encoder)


def images_per_second(precision: str, cfg: UNetConfig, args) -> float:
    device = resolve_device("auto")
    torch.manual_seed(0)
    model = make_network(cfg).to(device)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = get_loss("dice")
    x = torch.randn(args.batch, 3, args.tile, args.tile, device=device).contiguous(memory_format=torch.channels_last)
    target = (torch.rand(args.batch, args.tile, args.tile, device=device) > 0.9).long()
    ones = torch.ones(args.batch, args.tile, args.tile, device=device)

    def step():
        with autocast(device, precision):
            loss = loss_fn(model(x), target, ones, ones)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps * args.batch / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--norm", default="batch")
    ap.add_argument("--encoders", default="unet", help="comma-separated: unet, resnet18, resnet34")
    args = ap.parse_args()
    tune_allocator()  # as geoseg train does
    fast = "bf16" if torch.cuda.is_available() or cpu_has_bf16() else None
    print(f"batch {args.batch} of {args.tile}² px, {resolve_device('auto')}, {torch.get_num_threads()} threads")
    for encoder in args.encoders.split(","):
        cfg = network(encoder, args)
        weights = sum(p.numel() for p in make_network(cfg).parameters()) / 1e6
        fp32 = images_per_second("fp32", cfg, args)
        print(f"{cfg.describe()} ({weights:.2f} M weights)")
        print(f"  fp32  {fp32:6.2f} images/s  {args.batch / fp32:.2f} s a step")
        if fast:
            bf = images_per_second(fast, cfg, args)
            print(f"  bf16  {bf:6.2f} images/s  {args.batch / bf:.2f} s a step  ({bf / fp32:.2f}× fp32)")


if __name__ == "__main__":
    main()
