"""Training: ``fit(TrainConfig) -> run folder``.

Reads top to bottom: find and load the labelled pairs, split off a validation set,
measure band statistics, build the U-Net, then epochs of augmented random tiles with
Adam and a cyclic learning rate, a validation IoU after each epoch, ``last.pt`` every
epoch and ``model.pt`` whenever validation IoU improves. ``metrics.csv`` gets a row per
epoch, ``curves.png`` the loss and IoU so far, ``preview.png`` the validation images
with their predictions. Ctrl-C saves ``last.pt`` and stops; ``time_limit`` stops
cleanly between steps; ``resume`` continues from ``last.pt``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from geoseg.config import TrainConfig
from geoseg.datasets.classes import colours_of
from geoseg.datasets.sources import TrainingData, load_training_data
from geoseg.errors import CheckpointError, GeosegError, InputError, Interrupted, interrupt_exit_code
from geoseg.evaluation.metrics import Confusion, Counts
from geoseg.models import checkpoint
from geoseg.models.registry import config_to_dict, create_model
from geoseg.models.unet import UNetConfig
from geoseg.outputs.atomic import fresh_folder, refuse_inputs_in_folder
from geoseg.runtime import (
    autocast,
    loader_workers,
    resolve_device,
    resolve_precision,
    seed_everything,
    tune_allocator,
)
from geoseg.train import ddp
from geoseg.train.augment import train_transform
from geoseg.train.losses import NEEDS_WEIGHT_MAP, class_weighted, frequency_weights, get_loss
from geoseg.train.run_folder import prepare_run_dir, refuse_changed_resume, run_inputs, write_config

# GDAL's block cache while training (in bytes): random windows of the training scenes come back to
# the blocks of the windows before them; bounded, as by default it takes 5 % of RAM
TRAIN_CACHE_BYTES = 128 << 20
METRIC_FIELDS = ["epoch", "step", "lr", "train_loss", "val_loss", "val_iou", "val_f1", "seconds"]


def _initial(config: TrainConfig, data: TrainingData) -> checkpoint.Checkpoint:
    """The model ``--init`` names (a path or ``starter``), checked against the data."""
    path = checkpoint.resolve(config.init)
    start = checkpoint.load(path)
    if start.model.in_channels != data.bands:
        raise InputError(f"`init` {config.init}: a model of {start.model.in_channels} band(s), but these images have"
                         f" {data.bands}; start from a model of {data.bands} bands, or train without `init`")
    if start.model.classes != data.classes.k:
        raise InputError(f"`init` {config.init}: a model of {start.model.classes} classes, but these labels have"
                         f" {data.classes.k} ({', '.join(data.classes.names)}); start from a model of the same"
                         " classes, or train without `init`")
    if config.tile_size % start.model.multiple:
        raise InputError(f"`init` {config.init}: its network needs `tile_size` a multiple of {start.model.multiple}")
    return start


def param_groups(model: torch.nn.Module, encoder_lr: float) -> tuple[list[dict], list[float]]:
    """The optimiser's parameter groups and each one's multiple of the learning rate: one group
    at 1, or with ``encoder_lr`` ≠ 1 and a network with an ``encoder`` (the pretrained
    EfficientNet-Lite's) the rest at 1 and the encoder at ``encoder_lr``."""
    encoder = [p for n, p in model.named_parameters() if n.startswith("encoder.")]
    if encoder_lr == 1.0 or not encoder:
        return [{"params": list(model.parameters())}], [1.0]
    rest = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    return [{"params": rest}, {"params": encoder}], [1.0, encoder_lr]


def evaluate_batches(model, loader, loss_fn, device, precision, keep: bool = False):
    """Mean loss and pixel confusion (valid pixels only) of ``model`` over ``loader``: roof
    ``Counts`` for two classes, a ``Confusion`` of every class for more; with ``keep``, also
    the roof (any class but background) probability of each item (float32 ``(H, W)`` numpy)."""
    model.eval()
    total, n, counts, probs = 0.0, 0, None, []
    for batch in loader:  # the data outside autocast
        with torch.no_grad(), autocast(device, precision):
            b = {k: v.to(device) for k, v in batch.items()}
            x = b["image"].contiguous(memory_format=torch.channels_last)
            logits = model(x)
            total += float(loss_fn(logits, b["target"], b["valid"], b["weight"])) * x.shape[0]
            n += x.shape[0]
            k = logits.shape[1]
            if k > 2:
                c = Confusion.of(logits.argmax(1).cpu().numpy(), b["target"].cpu().numpy(), k,
                                 (b["valid"] > 0).cpu().numpy())
            else:
                pred = logits.argmax(1) == 1
                t, v = b["target"] == 1, b["valid"] > 0
                tp = int((pred & t & v).sum())
                fp = int((pred & ~t & v).sum())
                fn = int((~pred & t & v).sum())
                c = Counts(tp, fp, fn, int(v.sum()) - tp - fp - fn)
            counts = c if counts is None else counts + c
            if keep:
                probs += list(1.0 - logits.float().softmax(1)[:, 0].cpu().numpy())
    return total / max(n, 1), counts if counts is not None else Counts(), probs


def class_fields(names: tuple[str, ...]) -> list[str]:
    """The ``metrics.csv`` columns of each class's held-out IoU; none for two classes."""
    return [f"iou_{name}" for name in names[1:]] if len(names) > 2 else []


def class_scores(counts, names: tuple[str, ...]) -> dict:
    """Each class's held-out IoU (``class_fields``) from a ``Confusion``; nothing for two classes."""
    if not isinstance(counts, Confusion):
        return {}
    return {field: round(counts.counts(c).iou, 5) for c, field in enumerate(class_fields(names), 1)}


def _save_average(model, snapshots: list[dict], loader, device, precision, val_dl, loss_fn, save,
                  progress: bool) -> None:
    """Load the mean of ``snapshots`` into ``model``, measure its BatchNorm statistics again
    over ``loader`` (the mean of the weights does not match the mean of the statistics), and
    ``save`` it; with no snapshot (a run shorter than one cycle), the last weights as they are."""
    from tqdm import tqdm

    if snapshots:
        mean = {k: (sum(s[k].double() for s in snapshots) / len(snapshots)).to(v.dtype)
                if v.is_floating_point() else v for k, v in snapshots[-1].items()}
        model.load_state_dict(mean)
        with torch.no_grad():  # a plain mean over one epoch of tiles, in float32
            torch.optim.swa_utils.update_bn((batch["image"] for batch in loader), model, device)
    row = {"averaged_cycles": len(snapshots)}
    if val_dl is not None:
        vloss, counts, _ = evaluate_batches(model, val_dl, loss_fn, device, precision)
        row.update(val_loss=round(vloss, 5), val_iou=round(counts.iou, 5), val_f1=round(counts.f1, 5))
    save(row)
    if progress:
        what = (f"the mean of the weights at the last {len(snapshots)} cycle ends" if snapshots
                else "the last weights (the run ended before a learning-rate cycle did)")
        tqdm.write(f"model.pt: {what}" + (f", val_iou {row['val_iou']}" if "val_iou" in row else ""))


def fit(config: TrainConfig, progress: bool = True) -> Path:
    """Train a U-Net on ``config.data_dir``; return the run folder holding ``model.pt``.

    Under ``torchrun`` (or ``spawn``) each process trains a DistributedDataParallel
    replica and rank 0 writes the run folder (``ddp``)."""
    config.check()
    config = replace(config, contact_gap=config.gap())  # decided once: the run folder and the model record it
    dist = ddp.from_env()
    device = resolve_device(config.device)
    tune_allocator()
    precision = resolve_precision(config.precision, device)
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=TRAIN_CACHE_BYTES):  # a bounded block cache: scenes are read in windows
        if dist.main:  # said before anything is read; the folder is emptied (--overwrite) once the data loaded
            refuse_inputs_in_folder("`out`", config.out_dir, run_inputs(config))
            if not config.resume:
                fresh_folder(config.out_dir, config.overwrite, "run folder", ", `resume`", empty_it=False)
        data = load_training_data(config, config.resolved_loss() in NEEDS_WEIGHT_MAP)
        out = (prepare_run_dir(config.out_dir, config.overwrite, config.resume, run_inputs(config)) if dist.main
               else Path(config.out_dir))
        if config.resume and dist.main:
            refuse_changed_resume(out, config, data)
        if dist.active:
            device = ddp.init(dist, device)
            ddp.barrier(dist)  # the run folder is ready
        try:
            return _fit(config, _Place(dist, device, precision), data, out, progress)
        finally:
            data.close()
            ddp.close(dist)


@dataclass(frozen=True)
class _Place:
    """Where this process trains: its place among the processes, its device and precision."""

    dist: ddp.Dist
    device: torch.device
    precision: str


def _fit(config: TrainConfig, place: _Place, data: TrainingData, out: Path, progress: bool) -> Path:
    from tqdm import tqdm

    from geoseg.outputs.preview import render_curves, render_validation

    dist, device, precision = place.dist, place.device, place.precision
    progress = progress and dist.main
    if progress and data.about:
        tqdm.write(f"training on {data.about}")
    seed_everything(config.seed + dist.rank)  # rank 0 as one process; the others their own tiles
    norm, gsd = data.norm, data.gsd
    mcfg = UNetConfig(in_channels=data.bands, classes=data.classes.k, depth=config.levels, width=config.width,
                      norm=config.norm, encoder=config.encoder)
    start = _initial(config, data) if config.init else None
    if start is not None:  # fine-tuning: its network, its weights, its normalisation and pixel size
        mcfg, gsd = start.model, gsd or start.gsd
        norm = start.norm if start.norm.scale == data.scale else norm
    model = create_model(mcfg, pretrained=config.pretrained_encoder and not config.resume)
    if start is not None:
        model.load_state_dict(start.state_dict)
        if progress:
            tqdm.write(f"starting from {config.init}: {mcfg.describe()}, its band"
                       f" normalisation{'' if norm is start.norm else ' (not: these images are scaled otherwise)'}")
    model = model.to(device).to(memory_format=torch.channels_last)
    net = model
    if dist.active:  # rank 0's initial weights go to every replica; gradients are averaged
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    loss_name = config.resolved_loss(data.classes.k)
    loss_fn = get_loss(loss_name)
    if config.class_weights and data.class_pixels is not None:
        weights = frequency_weights(np.asarray(data.class_pixels, dtype=np.float64))
        loss_fn = class_weighted(loss_fn, torch.from_numpy(weights).to(device))
        if progress:
            tqdm.write("class weights: " + ", ".join(f"{n} {w:.2f}" for n, w in zip(data.classes.names, weights)))
    if progress and config.loss == "auto":
        budget = "this --time-limit" if config.time_limit else "a budget of 5 minutes or more"
        why = ("the one that teaches the contact gap" if config.contact_gap else "the best measured for several"
               " classes" if data.classes.k > 2 else f"the best measured for {budget}")
        tqdm.write(f"loss: {loss_name} ({why}; --loss to choose)")
    if progress and config.contact_gap:
        tqdm.write(f"contact gap: {config.contact_gap} px between touching footprints taught as background, and"
                   " predict cuts such roofs apart (--contact-gap 0: none)")
    if progress and start is None:
        weights = sum(p.numel() for p in model.parameters()) / 1e6
        said = ", its encoder ImageNet-pretrained" if config.pretrained_encoder else ""
        tqdm.write(f"network: {mcfg.describe()}, {weights:.3g} M weights{said} (--encoder to choose)")

    # an epoch is the same number of tiles whatever the number of processes
    per_epoch = math.ceil((config.samples_per_epoch or max(data.per_epoch, 8 * config.batch_size)) / dist.world)
    augment = train_transform(mcfg.in_channels, config.photometric, config.rotation)
    train_ds = data.train(norm, mcfg.multiple, augment, per_epoch)
    gen = torch.Generator().manual_seed(config.seed + dist.rank)
    workers = loader_workers(device, dist.world) if config.loader_workers is None else config.loader_workers
    train_dl = DataLoader(train_ds, batch_size=config.batch_size, shuffle=True, generator=gen, num_workers=workers,
                          pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    val_dl = DataLoader(data.val(norm, mcfg.multiple), batch_size=1) if data.val is not None else None

    steps_per_epoch = math.ceil(per_epoch / config.batch_size)
    cycle_epochs = 4  # the learning rate climbs for half of them and falls for the other half
    groups, rates = param_groups(model, config.encoder_lr)
    opt = torch.optim.Adam(groups, lr=config.lr_max, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.CyclicLR(
        opt, base_lr=[config.lr_min * k for k in rates], max_lr=[config.lr_max * k for k in rates],
        step_size_up=cycle_epochs // 2 * steps_per_epoch, mode="triangular", cycle_momentum=False,
    )
    best, step, first_epoch, history = -math.inf, 0, 1, []
    snapshots: list[dict] = []  # weights at the last ``config.average`` cycle ends
    if config.resume:
        last = checkpoint.load(out / "last.pt")
        if last.model != mcfg:
            raise CheckpointError(
                f"{out / 'last.pt'}: a run of another architecture ({config_to_dict(last.model)}); resume with its"
                " options (`encoder`, `depth`, `width`, `norm`, bands) or start a new `out`")
        state = last.extra  # the training state: optimiser, scheduler, random streams, snapshots
        if last.epoch is None or not all(k in state for k in ("optimizer", "scheduler", "best", "step")):
            raise CheckpointError(f"{out / 'last.pt'}: holds no training state to resume from; train without"
                                  " `resume` into a new `out`")
        model.load_state_dict(last.state_dict)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rngs = state.get("rank_rngs") or [(state["torch_rng"], state["loader_rng"])]
        if dist.rank < len(rngs):  # each rank continues its own random stream
            torch.set_rng_state(rngs[dist.rank][0])
            gen.set_state(rngs[dist.rank][1])
        else:  # resumed with more processes than it was saved with: the new ranks start fresh
            gen.manual_seed(config.seed + dist.rank + 1000 * last.epoch)
        best, step, first_epoch = state["best"], state["step"], last.epoch + 1
        snapshots = state.get("snapshots", [])[-config.average:] if config.average else []
        if first_epoch > config.epochs:
            raise InputError(f"{out / 'last.pt'}: already trained {last.epoch} epochs; resume with"
                             f" `epochs` above {last.epoch}")
        with open(out / "metrics.csv") as fh:
            history = [row for row in csv.DictReader(fh) if int(row["epoch"]) < first_epoch]
    if dist.main:
        write_config(out, config, {"model": asdict(mcfg), "resolved_device": str(device),
                                    "resolved_precision": precision,
                                    "train_images": data.train_names, "val_images": data.val_names,
                                    "gsd": gsd, "band_stats": asdict(norm),
                                    "processes": dist.world}, first_epoch)
    meta = {"train_config": asdict(config), "nodata": config.nodata, "gsd": gsd,
            "classes": list(data.classes.names), "colours": list(colours_of(data.classes.names))}
    colours = dict(zip(meta["classes"], meta["colours"]))  # the curves' per-class lines

    def save(name: str, epoch: int, row: dict, full: bool, rngs: list | None = None) -> None:
        """Rank 0 writes; ``rngs``: every rank's random state (gathered), for an exact resume."""
        if not dist.main:
            return
        rngs = rngs or [(torch.get_rng_state(), gen.get_state())]
        extra = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "best": best, "step": step,
                 "torch_rng": rngs[0][0], "loader_rng": rngs[0][1], "rank_rngs": rngs,
                 "snapshots": snapshots} if full else {}
        checkpoint.save(out / name, model, norm, config.tile_size, epoch=epoch, metrics=row, **meta, **extra)

    start = time.perf_counter()
    deadline = start + 60 * config.time_limit if config.time_limit else math.inf
    epoch, row = first_epoch - 1, {}
    saved_epoch = first_epoch - 1 if config.resume else None  # the epoch last.pt holds
    with open(out / "metrics.csv", "w", newline="") if dist.main else open(os.devnull, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_FIELDS + class_fields(data.classes.names),
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
        try:
            for epoch in range(first_epoch, config.epochs + 1):
                net.train()
                running, seen = 0.0, 0
                bar = tqdm(train_dl, desc=f"epoch {epoch}/{config.epochs}", leave=False,
                           disable=None if progress else True, unit="batch")  # None: not in a log file
                for batch in bar:
                    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                    x = b["image"].contiguous(memory_format=torch.channels_last)
                    with autocast(device, precision):
                        loss = loss_fn(net(x), b["target"], b["valid"], b["weight"])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    step += 1
                    running += float(loss.detach()) * x.shape[0]
                    seen += x.shape[0]
                    bar.set_postfix(loss=f"{running / seen:.4f}")
                    # every rank stops at the same step, or the others would wait for it for ever
                    if ddp.any_rank(time.perf_counter() > deadline, dist, device):
                        break
                running, seen = ddp.sums([running, seen], dist, device)
                row = {"epoch": epoch, "step": step, "lr": f"{sched.get_last_lr()[0]:.3g}",
                       "train_loss": round(running / max(seen, 1), 5)}
                if val_dl is not None and dist.main:  # rank 0 alone: its replica is everyone's
                    vloss, counts, probs = evaluate_batches(model, val_dl, loss_fn, device, precision, keep=True)
                    row.update(val_loss=round(vloss, 5), val_iou=round(counts.iou, 5), val_f1=round(counts.f1, 5),
                               **class_scores(counts, data.classes.names))
                    render_validation(data.preview, probs, out / "preview.png")
                row["seconds"] = round(time.perf_counter() - start, 1)
                writer.writerow(row)
                fh.flush()
                history.append(row)
                if dist.main:
                    render_curves(history, out / "curves.png", colours=colours)
                if config.average and epoch % cycle_epochs == 0 and seen:  # at the cycle's lowest rate
                    snapshots = [*snapshots, {k: v.detach().clone() for k, v in model.state_dict().items()}]
                    snapshots = snapshots[-config.average:]
                score = row.get("val_iou", -row["train_loss"]) if config.select_best else epoch
                improved = score > best and not config.average
                if improved:
                    best = score
                    save("model.pt", epoch, row, full=False)
                save("last.pt", epoch, row, full=True, rngs=ddp.gather((torch.get_rng_state(), gen.get_state()),
                                                                            dist))
                saved_epoch = epoch
                if progress:
                    shown = ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("step", "lr"))
                    tqdm.write(f"{shown}{'  *best' if improved and config.select_best else ''}")
                if ddp.any_rank(time.perf_counter() > deadline, dist, device):
                    if progress:
                        tqdm.write(f"time limit of {config.time_limit} min reached after epoch {epoch}")
                    break
        except KeyboardInterrupt as exc:
            # last.pt stays at the last finished epoch: --resume trains the unfinished one again from its
            # start, with the same random state, so it ends with the weights of an uninterrupted run
            if saved_epoch is None:
                raise Interrupted(f"stopped in epoch {epoch} before any epoch finished; nothing to resume, run"
                                  " again (with `overwrite`)", interrupt_exit_code(exc)) from None
            if not (out / "model.pt").exists():  # something to predict with (--average writes it at the end)
                save("model.pt", epoch, row, full=False)
            raise Interrupted(
                f"stopped in epoch {epoch}; {out / 'last.pt'} holds epoch {saved_epoch}; continue with `resume`",
                interrupt_exit_code(exc)) from None
    if dist.active:  # the replicas must have stayed one model: say so in the run folder
        sums_ = ddp.gather(ddp.checksum(model), dist)
        if dist.main:
            (out / "distributed.json").write_text(json.dumps(
                {"processes": dist.world, "backend": "nccl" if device.type == "cuda" else "gloo",
                 "weight_checksums": sums_, "identical": len(set(sums_)) == 1}, indent=2))
        if len(set(sums_)) != 1:
            raise GeosegError("the training processes' weights differ at the end; do not trust this run")
    if config.average and dist.main:  # after the replicas' check: rank 0 alone
        _save_average(model, snapshots, train_dl, device, precision, val_dl, loss_fn,
                      lambda row: save("model.pt", epoch, row, full=False), progress)
    return out
