"""One small training loop on HF accelerate, shared by every notebook.

The same call runs on a CPU, one GPU, or several (through :func:`launch`, which wraps
accelerate's ``notebook_launcher``). It gives mixed precision on GPU, gradient accumulation,
a checkpoint at the end of every epoch (written atomically) with exact resume, tqdm progress
and a metrics history.

Why resume is exact: the sampler is accelerate's seedable sampler (its shuffle depends only on
``seed + epoch``), and the checkpoint stores model, optimiser, scheduler and every RNG state.
Why several processes give the same numbers as one: ``split_batches=True`` makes each step see
the same global batch, split across processes, and DDP averages the gradients of the halves,
which equals the gradient of the whole (for models without batch statistics).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .config import progress


@dataclass
class TrainConfig:
    """What a notebook chooses per profile. ``batch_size`` is the global batch per step."""

    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"          # adamw | adam | sgd
    momentum: float = 0.9             # sgd only
    scheduler: str = "cosine"         # cosine | step | exponential | none
    warmup_steps: int = 0
    step_size: int = 1                # step scheduler: epochs per decay
    gamma: float = 0.9                # step/exponential decay
    grad_accum: int = 1
    clip_grad: float | None = None
    mixed_precision: str = "auto"     # auto (bf16 on GPU, no on CPU) | no | fp16 | bf16
    seed: int = 0
    num_workers: int = 0
    checkpoint_dir: str | None = None  # end-of-epoch checkpoints; resume from the latest
    resume: bool = True
    progress: bool = True
    desc: str = "train"
    time_budget_s: float | None = None  # stop after the step that crosses it (a safety cap for lent GPUs)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError(f"TrainConfig: epochs, batch_size and grad_accum must be >= 1; got "
                             f"{self.epochs}, {self.batch_size}, {self.grad_accum}")
        if self.optimizer not in ("adamw", "adam", "sgd"):
            raise ValueError(f"TrainConfig.optimizer: expected adamw|adam|sgd, got {self.optimizer!r}")
        if self.scheduler not in ("cosine", "step", "exponential", "none"):
            raise ValueError(f"TrainConfig.scheduler: expected cosine|step|exponential|none, got {self.scheduler!r}")
        if self.time_budget_s is not None and not self.time_budget_s >= 0:
            raise ValueError(f"TrainConfig.time_budget_s: expected None or seconds >= 0, got {self.time_budget_s!r}")


@dataclass
class History:
    """Per-epoch means of every logged value, plus per-step loss."""

    epochs: dict[str, list[float]] = field(default_factory=dict)
    step_loss: list[float] = field(default_factory=list)
    stopped_early: dict | None = None   # {"epoch", "step", "elapsed_s"} when the time budget ended training
    best: dict | None = None            # {"epoch", "metric", "value"} with fit(keep_best=...): the weights kept

    def log_epoch(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.epochs.setdefault(k, []).append(float(v))

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "step_loss": self.step_loss, "stopped_early": self.stopped_early,
                "best": self.best}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(epochs={k: list(v) for k, v in d["epochs"].items()}, step_loss=list(d["step_loss"]),
                   stopped_early=d.get("stopped_early"), best=d.get("best"))


class Callback:
    """Hooks into :func:`fit` (override what you need). ``model`` is the unwrapped model.

    ``on_step_end(model, epoch, step, logs)`` after every optimiser step (e.g. an EMA update);
    ``on_epoch_end(model, epoch, values)`` after the epoch's values (and ``val_*``) are logged."""

    def on_step_end(self, model: nn.Module, epoch: int, step: int, logs: dict[str, float]) -> None:
        pass

    def on_epoch_end(self, model: nn.Module, epoch: int, values: dict[str, float]) -> None:
        pass


def _parse_keep_best(keep_best: str | None) -> tuple[str, str] | None:
    if keep_best is None:
        return None
    mode, _, metric = keep_best.partition(":")
    if mode not in ("max", "min") or not metric:
        raise ValueError(f"keep_best: expected 'max:<metric>' or 'min:<metric>' (e.g. 'max:val_acc'), got {keep_best!r}")
    return mode, metric


def default_step(model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on ``(x, y)`` batches; returns the loss and values to log."""
    x, y = batch[0], batch[1]
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y)
    acc = (logits.argmax(1) == y).float().mean()
    return loss, {"acc": acc.item()}


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def make_accelerator(cfg: TrainConfig, cpu: bool | None = None):
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    return Accelerator(
        mixed_precision=_mixed_precision(cfg.mixed_precision),
        gradient_accumulation_steps=cfg.grad_accum,
        cpu=bool(cpu) if cpu is not None else not torch.cuda.is_available(),
        dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True),
    )


def _optimizer(params, cfg: TrainConfig):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _scheduler(opt, cfg: TrainConfig, steps_per_epoch: int):
    total = cfg.epochs * steps_per_epoch
    warm = cfg.warmup_steps

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.scheduler == "cosine":
            t = (step - warm) / max(1, total - warm)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        if cfg.scheduler == "step":
            return cfg.gamma ** ((step // steps_per_epoch) // cfg.step_size)
        if cfg.scheduler == "exponential":
            return cfg.gamma ** (step // steps_per_epoch)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _latest_checkpoint(root: Path) -> tuple[int, Path] | None:
    best = None
    for p in root.glob("epoch-*"):
        if (p / "done.json").exists():
            e = int(p.name.split("-")[1])
            if best is None or e > best[0]:
                best = (e, p)
    return best


def fit(model: nn.Module, train_data: Dataset, cfg: TrainConfig, *,
        step: Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]] = default_step,
        evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
        accelerator=None, params=None, on_step: Callable[[int, int], None] | None = None,
        callbacks: Sequence[Callback] = (), keep_best: str | None = None) -> History:
    """Train ``model`` on ``train_data`` for ``cfg.epochs``; return the :class:`History`.

    ``step(model, batch)`` returns ``(loss, {name: value})``; ``evaluate(model)`` (optional,
    run on the main process after each epoch) returns metrics to log. ``params`` restricts
    what is optimised (e.g. an adapter only). ``on_step(epoch, step)`` runs before each step
    (the tests simulate an interruption with it); ``callbacks`` see every step's and epoch's end.
    ``keep_best="max:val_acc"`` (or ``"min:val_loss"``, any logged name) restores, after the last
    epoch, the weights of the epoch where that value was best (``history.best`` says which);
    otherwise the last epoch's weights stay in ``model``.
    """
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    acc = accelerator or make_accelerator(cfg)
    set_seed(cfg.seed)
    loader = DataLoader(train_data, batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.num_workers,
                        drop_last=len(train_data) > cfg.batch_size,
                        generator=torch.Generator().manual_seed(cfg.seed))
    opt = _optimizer(params if params is not None else [p for p in model.parameters() if p.requires_grad], cfg)
    steps_per_epoch = max(1, math.ceil(len(loader) / cfg.grad_accum))
    sched = _scheduler(opt, cfg, steps_per_epoch)
    pmodel, opt, loader, sched = acc.prepare(model, opt, loader, sched)

    history, start = History(), 0
    ckpt_root = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    if ckpt_root is not None and cfg.resume:
        found = _latest_checkpoint(ckpt_root)
        if found is not None:
            epoch_done, path = found
            acc.load_state(str(path / "state"))
            history = History.from_dict(json.loads((path / "done.json").read_text())["history"])
            start = epoch_done
            acc.print(f"resumed from {path} (epoch {epoch_done}/{cfg.epochs})")

    best_rule = _parse_keep_best(keep_best)
    best_state = None
    if best_rule is not None and start > 0 and history.best is not None:
        # checkpoints hold the last epoch's weights only: after a resume the best is chosen anew
        acc.print(f"keep_best: the best before the resume (epoch {history.best['epoch']}) is not in the checkpoint; "
                  "choosing among the remaining epochs")
        history.best = None
    t_start = time.monotonic()
    for epoch in range(start, cfg.epochs):
        pmodel.train()
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        sums: dict[str, float] = {}
        count = 0
        bar = tqdm(loader, desc=f"{cfg.desc} {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not (cfg.progress and acc.is_local_main_process))
        for i, batch in enumerate(bar):
            if on_step is not None:
                on_step(epoch, i)
            with acc.accumulate(pmodel):
                loss, logs = step(pmodel, batch)
                acc.backward(loss)
                if cfg.clip_grad and acc.sync_gradients:
                    acc.clip_grad_norm_(pmodel.parameters(), cfg.clip_grad)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
            lval = acc.reduce(loss.detach().float(), reduction="mean").item()
            history.step_loss.append(lval)
            for k, v in {"loss": lval, **logs}.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            for cb in callbacks:
                cb.on_step_end(acc.unwrap_model(pmodel), epoch, i, {"loss": lval, **logs})
            bar.set_postfix(loss=f"{lval:.4f}")
            if cfg.time_budget_s is not None and _over_budget(acc, time.monotonic() - t_start, cfg.time_budget_s):
                history.stopped_early = {"epoch": epoch, "step": i + 1, "elapsed_s": round(time.monotonic() - t_start, 1)}
                acc.print(f"{cfg.desc}: time budget {cfg.time_budget_s:.0f} s reached at epoch {epoch + 1}, "
                          f"step {i + 1}/{len(loader)}; stopping (the learning-rate schedule is cut short)")
                break
        values = {k: v / max(count, 1) for k, v in sums.items()}
        values["lr"] = sched.get_last_lr()[0]
        if evaluate is not None:
            pmodel.eval()
            with torch.no_grad():
                values.update({f"val_{k}": v for k, v in evaluate(acc.unwrap_model(pmodel)).items()})
        history.log_epoch(values)
        for cb in callbacks:
            cb.on_epoch_end(acc.unwrap_model(pmodel), epoch, values)
        if best_rule is not None:
            mode, metric = best_rule
            if metric not in values:
                raise KeyError(f"keep_best: {metric!r} is not logged; logged: {sorted(values)} "
                               "(validation values are named val_<name>: pass evaluate=)")
            v = float(values[metric])
            better = history.best is None or (v > history.best["value"] if mode == "max" else v < history.best["value"])
            if better:
                history.best = {"epoch": epoch + 1, "metric": metric, "value": v}
                best_state = {k: t.detach().to("cpu", copy=True) for k, t in acc.unwrap_model(pmodel).state_dict().items()}
        if ckpt_root is not None and history.stopped_early is None:
            _save_checkpoint(acc, ckpt_root, epoch + 1, history, cfg)
        if history.stopped_early is not None:
            break
    acc.wait_for_everyone()
    if best_state is not None:
        acc.unwrap_model(pmodel).load_state_dict(best_state)
    return history


def _over_budget(acc, elapsed: float, budget: float) -> bool:
    """Whether any process is past the budget (all processes stop at the same step)."""
    over = elapsed > budget
    if acc.num_processes == 1:
        return over
    flag = torch.tensor([float(over)], device=acc.device)
    return bool(acc.reduce(flag, reduction="sum").item() > 0)


def _save_checkpoint(acc, root: Path, epoch: int, history: History, cfg: TrainConfig) -> None:
    """Write ``root/epoch-N`` via a temp folder and a rename; keep only the newest two."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch-{epoch:04d}"
    tmp = root / f".tmp-epoch-{epoch:04d}"
    if acc.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    acc.wait_for_everyone()
    acc.save_state(str(tmp / "state"))
    acc.wait_for_everyone()
    if acc.is_main_process:
        (tmp / "done.json").write_text(json.dumps({"epoch": epoch, "config": asdict(cfg),
                                                   "history": history.to_dict()}))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        olds = sorted(p for p in root.glob("epoch-*") if p != final)
        for old in olds[:-1]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def launch(function: Callable, args: tuple = (), num_processes: int | None = None) -> None:
    """Run ``function(*args)`` in ``num_processes`` processes: GPUs via ``notebook_launcher``,
    CPU processes (gloo) via accelerate's debug launcher. One process runs it in place."""
    if not num_processes or num_processes == 1:
        function(*args)
        return
    if torch.cuda.is_available():
        from accelerate import notebook_launcher

        notebook_launcher(function, args, num_processes=num_processes)
    else:
        _launch_cpu(function, args, num_processes)


def _launch_cpu(function: Callable, args: tuple, num_processes: int) -> None:
    """Several CPU processes talking gloo over loopback.

    accelerate's own debug launcher forks, and a fork taken after torch has started its
    OpenMP thread pool can deadlock the children; we spawn fresh interpreters instead.
    """
    import socket
    import tempfile

    from accelerate.utils import PrepareForLaunch, patch_environment
    from torch.multiprocessing import start_processes

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.NamedTemporaryFile() as rdv, patch_environment(
            world_size=num_processes, master_addr="127.0.0.1", master_port=str(port),
            accelerate_mixed_precision="no", accelerate_debug_rdv_file=rdv.name,
            accelerate_use_cpu="yes", gloo_socket_ifname="lo"):
        start_processes(PrepareForLaunch(function, debug=True), args=args, nprocs=num_processes,
                        start_method="spawn")


@torch.no_grad()
def predict(model: nn.Module, data: Dataset, batch_size: int = 256, device=None,
            forward: Callable[[nn.Module, Any], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` over ``data`` (``(x, y, ...)`` items); return ``(outputs, labels)`` on CPU."""
    device = device or next(model.parameters()).device
    model.eval()
    outs, labels = [], []
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    for batch in progress(loader, total=len(loader), desc="predict"):
        x = batch[0].to(device)
        out = forward(model, batch) if forward else model(x)
        outs.append(out.float().cpu())
        labels.append(batch[1].cpu())
    return torch.cat(outs), torch.cat(labels)


@torch.no_grad()
def predict_arrays(model: nn.Module, images, preprocess: Callable[[torch.Tensor], torch.Tensor], *,
                   batch_size: int = 256, device=None,
                   output: Callable[[Any], torch.Tensor] | None = None) -> torch.Tensor:
    """``model(preprocess(batch))`` over uint8 ``images`` (a numpy array or tensor, any layout the
    preprocessing expects, e.g. (N, H, W, 3)), in order, without shuffling; outputs on the CPU.

    ``preprocess`` gets each uint8 batch already on the model's device; ``output`` picks the
    tensor to keep when the model returns several (e.g. ``lambda out: out[0]``)."""
    import numpy as np

    device = device or next(model.parameters()).device
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise ValueError(f"predict_arrays: expected uint8 images, got {images.dtype}")
        images = torch.from_numpy(images)
    model.eval()
    outs = []
    for a in progress(range(0, len(images), batch_size), desc="predict"):
        out = model(preprocess(images[a:a + batch_size].to(device)))
        out = output(out) if output is not None else out
        outs.append(out.float().cpu())
    if not outs:
        raise ValueError("predict_arrays: no images")
    return torch.cat(outs)
