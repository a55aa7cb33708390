"""Reference diffusion classifier in PyTorch: a port of Li et al.'s `eval_prob_adaptive`.

It is the correctness oracle for the TypeScript engine (same grid, same noise from
`portable_rng`, same elimination) and the side-by-side speed baseline.

* Full timestep grid: `range(lo + step // 2, hi, step)` with `step = (hi - lo) // grid_size`
  (Li et al.: lo=0, hi=1000, grid_size=500 -> t = 1, 3, ..., 999).
* Stage k with `n_samples` takes Li's subgrid `grid[len // n // 2 :: len // n][:n]`, minus
  timesteps already evaluated, for every remaining class; then keeps the `keep` classes
  with the lowest mean error over *all* timesteps they have been scored on.
* Noise: one draw per full-grid index j, shared by all classes:
  `portable_rng.normal(seed, j, C*H*W)`; the same for every image, so a verdict depends
  only on (image, bundle, adapter, settings).
* `timesteps="stratified"` replaces grid point j by `lo + j*step + floor(u_j * step)` with
  `u_j = portable_rng.uniform(seed, 0x5EED, grid_size)[j]`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from . import portable_rng
from .schedule import alphas_cumprod, eps_errors

STRATIFIED_STREAM = 0x5EED
ORDER_STREAM = 0x0DE5


@dataclass(frozen=True)
class Stage:
    n_samples: int
    keep: int


@dataclass(frozen=True)
class Sequential:
    """Sequential class pruning with a paired z test (lib/class_pruning.ts)."""

    z: float
    batch: int
    min_timesteps: int
    max_timesteps: int
    order_seed: int = 0


@dataclass(frozen=True)
class DCSettings:
    stages: tuple[Stage, ...] = (Stage(50, 5), Stage(500, 1))
    grid_size: int = 500
    t_range: tuple[int, int] = (0, 1000)
    error: str = "l2"  # "l2" (paper's equations) or "l1" (Li et al.'s CIFAR-10 code)
    timesteps: str = "even"  # or "stratified"
    seed: int = 0
    posterior_scale: float = 1.0
    extra: dict = field(default_factory=dict)
    sequential: Sequential | None = None  # when set, `stages` are not used
    # per-grid-index weights (learned on validation): each error is multiplied by its
    # timestep's weight before it is summed or tested, as lib/diffusion_classifier.ts
    weights: tuple[float, ...] | None = None

    def full_grid(self) -> np.ndarray:
        lo, hi = self.t_range
        step = (hi - lo) // self.grid_size
        if step < 1:
            raise ValueError("grid_size larger than the timestep range")
        if self.weights is not None and len(self.weights) != self.grid_size:
            raise ValueError(f"{len(self.weights)} weights for a grid of {self.grid_size}")
        base = np.arange(lo + step // 2, hi, step)[: self.grid_size]
        if self.timesteps == "even":
            return base
        if self.timesteps == "stratified":
            u = portable_rng.uniform(self.seed, STRATIFIED_STREAM, self.grid_size)
            return lo + np.arange(self.grid_size) * step + np.floor(u * step).astype(np.int64)
        raise ValueError(f"unknown timestep mode {self.timesteps!r}")

    def stage_indices(self) -> list[list[int]]:
        """Full-grid indices newly evaluated at each stage (Li et al.'s subgrid rule)."""
        seen: set[int] = set()
        out = []
        n_full = self.grid_size
        for st in self.stages:
            stride = max(n_full // st.n_samples, 1)
            idx = list(range(n_full // st.n_samples // 2, n_full, stride))[: st.n_samples]
            idx = [i for i in idx if i not in seen]
            seen.update(idx)
            out.append(idx)
        return out

    def unet_calls(self, num_classes: int) -> int:
        if self.sequential:  # the budget; most images stop earlier
            return num_classes * self.sequential.max_timesteps
        calls, remaining = 0, num_classes
        for st, idx in zip(self.stages, self.stage_indices(), strict=True):
            calls += remaining * len(idx)
            remaining = min(remaining, st.keep)
        return calls


def noise_shape(model, images: np.ndarray) -> tuple[int, ...]:
    """The diffusion's own space: the image for pixel models, the latent for latent ones."""
    return tuple(getattr(model, "noise_shape", images.shape[1:]))


def noise_bank(settings: DCSettings, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    return np.stack([portable_rng.normal(settings.seed, j, n).reshape(shape) for j in range(settings.grid_size)])


@dataclass
class Verdict:
    label: int
    errors_sum: np.ndarray  # per class
    errors_sq: np.ndarray
    counts: np.ndarray
    unet_calls: int

    @property
    def mean_error(self) -> np.ndarray:
        return self.errors_sum / np.maximum(self.counts, 1)

    @property
    def std_error(self) -> np.ndarray:
        n = np.maximum(self.counts, 1)
        var = np.maximum(self.errors_sq / n - self.mean_error**2, 0.0) * n / np.maximum(n - 1, 1)
        return np.sqrt(var / n)

    finalists: list[int] = field(default_factory=list)
    stop: str = "stages"  # or, sequential pruning: "decided" / "budget"
    exit_at: list | None = None  # sequential: timesteps scored when each class left (None: never)

    def posterior(self, scale: float) -> np.ndarray:
        """Softmax over the classes scored in the last stage (same timesteps); 0 elsewhere."""
        f = np.array(self.finalists)
        z = -self.mean_error[f] * scale
        p = np.exp(z - z.max())
        out = np.zeros(len(self.mean_error))
        out[f] = p / p.sum()
        return out


def _row_errors(model, x_all, chunk, grid, noise, abar, lora, err_col, weights=None):
    """Errors (float64) of (image, class, grid index) rows, one UNet batch; times each row's
    timestep weight when the settings have weights (float64 products, as the TypeScript engine)."""
    dev = next(model.parameters()).device  # the rows go where the model is (GPU checks)
    ii = torch.tensor([r[0] for r in chunk])
    cc = torch.tensor([r[1] for r in chunk])
    jj = torch.tensor([r[2] for r in chunk])
    tt = torch.from_numpy(grid[jj.numpy()]).long()
    if hasattr(model, "pixel_errors"):  # a latent model (convert_sd.LatentDC): encode, then its own schedule
        errs = model.pixel_errors(x_all[ii].to(dev), tt.to(dev), noise[jj].to(dev), cc.to(dev), lora)
    else:
        errs = eps_errors(model, x_all[ii].to(dev), tt.to(dev), noise[jj].to(dev), cc.to(dev), abar.to(dev), lora)
    errs = errs[err_col].double().cpu().numpy()
    if weights is not None:
        errs = errs * np.asarray(weights, dtype=np.float64)[jj.numpy()]
    return ii.numpy(), cc.numpy(), errs


def timestep_order(grid_size: int, seed: int) -> np.ndarray:
    """The order grid indices are scored in by sequential pruning (ties: the lower index)."""
    return np.argsort(portable_rng.uniform(seed, ORDER_STREAM, grid_size), kind="stable")


class ClassRace:
    """One image's race, operation for operation as lib/class_pruning.ts (plain float64 sums in
    scoring order), so both engines take the same decisions from the same errors."""

    def __init__(self, num_classes: int, policy: Sequential, order: np.ndarray):
        self.policy, self.order = policy, [int(j) for j in order]
        self.alive = list(range(num_classes))
        self.errors: list[list[float]] = [[] for _ in range(num_classes)]
        self.exit_at: list[int | None] = [None] * num_classes
        self.rounds: list[list[int]] = []
        self.scored = 0
        self.stop: str | None = None

    def next(self) -> list[int] | None:
        if self.stop:
            return None
        end = min(self.scored + self.policy.batch, self.policy.max_timesteps, len(self.order))
        return self.order[self.scored : end]

    def mean(self, c: int) -> float:
        s = 0.0
        for v in self.errors[c]:
            s += v
        return s / len(self.errors[c])

    def leader(self) -> int:
        best = self.alive[0]
        for c in self.alive:
            if self.mean(c) < self.mean(best):
                best = c
        return best

    def decide(self, count: int) -> None:
        self.scored += count
        p, m = self.policy, self.scored
        if m >= p.min_timesteps and len(self.alive) > 1:
            lead = self.leader()
            out = []
            for c in self.alive:
                if c == lead:
                    continue
                total = 0.0
                for k in range(m):
                    total += self.errors[c][k] - self.errors[lead][k]
                mean = total / m
                ss = 0.0
                for k in range(m):
                    ss += (self.errors[c][k] - self.errors[lead][k] - mean) ** 2
                se = math.sqrt(ss / max(m - 1, 1) / m)
                if mean > p.z * se:
                    out.append(c)
            for c in out:
                self.exit_at[c] = m
            self.alive = [c for c in self.alive if c not in out]
        self.rounds.append(list(self.alive))
        if len(self.alive) == 1:
            self.stop = "decided"
        elif self.scored >= min(p.max_timesteps, len(self.order)):
            self.stop = "budget"


@torch.no_grad()
def classify_sequential(model, images: np.ndarray, settings: DCSettings, num_classes: int, lora=None, batch_rows: int = 1024):
    """Sequential class pruning: rounds of `batch` timesteps in the seeded order for the classes
    still in each image's race; rows of all images share UNet batches (rows in (image, class,
    grid index) order, as the TypeScript engine)."""
    model.eval()
    abar = alphas_cumprod()
    grid = settings.full_grid()
    noise = torch.from_numpy(noise_bank(settings, noise_shape(model, images)))
    x_all = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    err_col = 0 if settings.error == "l2" else 1
    order = timestep_order(settings.grid_size, settings.sequential.order_seed)
    races = [ClassRace(num_classes, settings.sequential, order) for _ in range(len(images))]
    while True:
        plan = [r.next() for r in races]
        rows = [(i, c, j) for i, js in enumerate(plan) if js for c in races[i].alive for j in js]
        if not rows:
            break
        for s in range(0, len(rows), batch_rows):
            chunk = rows[s : s + batch_rows]
            ii, cc, errs = _row_errors(model, x_all, chunk, grid, noise, abar, lora, err_col, settings.weights)
            for (i, c, _), e in zip(chunk, errs, strict=True):
                races[i].errors[c].append(float(e))
        for i, js in enumerate(plan):
            if js:
                races[i].decide(len(js))
    out = []
    for r in races:
        e = [np.array(v, dtype=np.float64) for v in r.errors]
        # plain float64 sums in scoring order, as the TypeScript engine (not numpy's pairwise sum)
        sums = np.array([sum(float(x) for x in v) for v in e])
        sqs = np.array([sum(float(x) * float(x) for x in v) for v in e])
        counts = np.array([len(v) for v in e], dtype=np.int64)
        out.append(Verdict(r.leader(), sums, sqs, counts, int(counts.sum()), list(r.alive), r.stop or "budget", list(r.exit_at)))
    return out


@torch.no_grad()
def classify(
    model, images: np.ndarray, settings: DCSettings, num_classes: int, lora=None, batch_rows: int = 1024
) -> list[Verdict]:
    """Classify float32 NCHW images in [0, 1]; rows of several images share UNet batches."""
    if settings.sequential:
        return classify_sequential(model, images, settings, num_classes, lora, batch_rows)
    model.eval()
    abar = alphas_cumprod()
    grid = settings.full_grid()
    noise = torch.from_numpy(noise_bank(settings, noise_shape(model, images)))
    n_img = len(images)
    sums = np.zeros((n_img, num_classes))
    sqs = np.zeros((n_img, num_classes))
    counts = np.zeros((n_img, num_classes), dtype=np.int64)
    remaining = [list(range(num_classes)) for _ in range(n_img)]
    calls = np.zeros(n_img, dtype=np.int64)
    x_all = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    err_col = 0 if settings.error == "l2" else 1
    finalists = remaining
    for k, (st, idx) in enumerate(zip(settings.stages, settings.stage_indices(), strict=True)):
        if k == len(settings.stages) - 1:
            finalists = [list(r) for r in remaining]
        rows = [(i, c, j) for i in range(n_img) for c in remaining[i] for j in idx]
        for s in range(0, len(rows), batch_rows):
            chunk = rows[s : s + batch_rows]
            ii, cc, errs = _row_errors(model, x_all, chunk, grid, noise, abar, lora, err_col, settings.weights)
            np.add.at(sums, (ii, cc), errs)
            np.add.at(sqs, (ii, cc), errs**2)
            np.add.at(counts, (ii, cc), 1)
            np.add.at(calls, ii, 1)
        for i in range(n_img):
            mean = [sums[i, c] / counts[i, c] for c in remaining[i]]
            order = np.argsort(mean, kind="stable")[: st.keep]  # lowest error first; ties -> lower index
            remaining[i] = [remaining[i][k] for k in order]
    return [Verdict(remaining[i][0], sums[i], sqs[i], counts[i], int(calls[i]), finalists[i]) for i in range(n_img)]


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, centre - half), min(1.0, centre + half))
