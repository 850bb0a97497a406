"""K-means in torch, fast enough for a 100k-item catalog on two CPU cores.

Semantic IDs need a few k-means fits per catalog (one per codebook level), each over up to a few
hundred thousand embeddings. Four choices keep that cheap:

- distances come from one matmul per chunk of rows (`|x|² - 2 x·c + |c|²`), chunked so the
  `(rows, K)` block stays within a fixed memory budget whatever the catalog size;
- centroids are fitted on a seeded subsample (`sample_size`) and every item is assigned once at
  the end: 256 centroids are pinned down long before 100k points are needed;
- k-means++ seeding runs on a smaller subsample still (it is sequential, one step per centroid),
  and Lloyd iterations stop as soon as the inertia stops improving (`tol`);
- small fits (a few thousand items) run on one CPU thread, where thread synchronisation would
  otherwise cost more than the arithmetic.

`balanced=True` replaces every assignment step with a capacity-constrained one (each cluster takes at
most `ceil(n / K * (1 + slack))` items), the balanced residual k-means of MiniOneRec's RQ-Kmeans
variant: evenly filled clusters leave fewer items sharing a full code tuple. Greedy balanced
assignments do not lower the inertia at every step, so such a fit stops at the first step that
does not improve it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

# Rows per distance block are chosen so that a (rows, K) float32 block stays under this many elements.
_BLOCK_ELEMENTS = 1 << 22
# Fits with fewer multiply-adds per assignment pass than this run on one CPU thread (see `_threads_for`).
_SMALL_WORK = 1 << 28
# k-means++ is sequential (one pass per centroid); seed it on at most this many points per centroid.
_INIT_POINTS_PER_CLUSTER = 40


@dataclass
class KMeansResult:
    """Fitted centroids, the label of every input row, and how the fit went."""

    centroids: torch.Tensor  # (K, d)
    labels: torch.Tensor  # (n,) int64
    inertia: float  # sum of squared distances of every row to its centroid
    iterations: int  # Lloyd iterations actually run (early stop included)


def _chunk_rows(k: int) -> int:
    return max(256, _BLOCK_ELEMENTS // max(k, 1))


def squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """`(n, K)` squared Euclidean distances, from one matmul (not chunked: callers chunk)."""
    c_norm = (centroids * centroids).sum(1)
    x_norm = (x * x).sum(1, keepdim=True)
    d = torch.addmm(c_norm.unsqueeze(0), x, centroids.T, alpha=-2.0)
    return (d + x_norm).clamp_min_(0.0)


def _partial_scores(x: torch.Tensor, centroids: torch.Tensor, c_norm: torch.Tensor) -> torch.Tensor:
    """`|c|² - 2 x·c`: the squared distance less `|x|²`, which ranks centroids for a row just as well."""
    return torch.addmm(c_norm.unsqueeze(0), x, centroids.T, alpha=-2.0)


def assign_nearest(x: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Label of the nearest centroid for every row, and the squared distance to it (chunked)."""
    n = x.shape[0]
    labels = torch.empty(n, dtype=torch.long, device=x.device)
    best = torch.empty(n, dtype=x.dtype, device=x.device)
    c_norm = (centroids * centroids).sum(1)
    step = _chunk_rows(centroids.shape[0])
    for start in range(0, n, step):
        chunk = x[start : start + step]
        scores, labels[start : start + step] = _partial_scores(chunk, centroids, c_norm).min(1)
        best[start : start + step] = (scores + (chunk * chunk).sum(1)).clamp_min_(0.0)
    return labels, best


def _candidates(x: torch.Tensor, centroids: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `m` nearest centroids of every row, nearest first, with their squared distances (chunked)."""
    n = x.shape[0]
    ids = torch.empty(n, m, dtype=torch.long, device=x.device)
    dists = torch.empty(n, m, dtype=x.dtype, device=x.device)
    c_norm = (centroids * centroids).sum(1)
    step = _chunk_rows(centroids.shape[0])
    for start in range(0, n, step):
        chunk = x[start : start + step]
        scores, ids[start : start + step] = torch.topk(
            _partial_scores(chunk, centroids, c_norm), m, dim=1, largest=False, sorted=True
        )
        dists[start : start + step] = (scores + (chunk * chunk).sum(1, keepdim=True)).clamp_min_(0.0)
    return ids, dists


def _accept(props: torch.Tensor, dists: torch.Tensor, room: torch.Tensor) -> torch.Tensor:
    """Which proposals clusters accept: each its closest proposers, up to its room (updated in place)."""
    k = room.shape[0]
    # Rank proposers within their cluster by distance: one sort on (cluster, distance) packed in a float64.
    d = dists.double()
    order = torch.argsort(props.double() * (float(d.max()) + 1.0) + d, stable=True)
    sorted_props = props[order]
    counts = torch.bincount(sorted_props, minlength=k)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(order.numel(), device=props.device) - starts[sorted_props]
    accepted = torch.zeros(props.numel(), dtype=torch.bool, device=props.device)
    accepted[order[rank < room[sorted_props]]] = True
    room -= torch.bincount(props[accepted], minlength=k)
    return accepted


def assign_balanced(
    x: torch.Tensor, centroids: torch.Tensor, capacity: int, candidates: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-centroid labels under a per-cluster capacity (greedy, in rounds, fully vectorised).

    Each round, every unassigned row proposes its nearest cluster that still has room; a cluster
    accepts its closest proposers up to its remaining room and is then full for everyone else.
    Every round fills at least one cluster or places every row, so it ends; in practice it takes a
    handful of rounds. The first round needs only each row's nearest cluster; rows it turns away
    get their `candidates` nearest clusters once, and only rows whose candidates all fill up get
    their distances computed again. Requires `capacity * K >= n`.
    """
    n, k = x.shape[0], centroids.shape[0]
    if capacity * k < n:
        raise ValueError(f"capacity {capacity} x {k} clusters cannot hold {n} rows")
    room = torch.full((k,), capacity, dtype=torch.long, device=x.device)
    labels, best = assign_nearest(x, centroids)
    rejected = torch.nonzero(~_accept(labels, best, room)).flatten()
    if not rejected.numel():
        return labels, best
    m = min(candidates, k)
    cand_ids, cand_dists = _candidates(x[rejected], centroids, m)
    pending = torch.arange(rejected.numel(), device=x.device)  # positions in `rejected`
    arange_m = torch.arange(m, device=x.device)
    while pending.numel():
        full = room <= 0
        free = ~full[cand_ids[pending]]  # (p, m): which candidates still have room
        first = torch.where(free, arange_m, m).min(1).values.clamp_max_(m - 1)
        props = cand_ids[pending, first]
        dists = cand_dists[pending, first]
        exhausted = torch.nonzero(~free.any(1)).flatten()
        if exhausted.numel():  # every candidate full: look at all clusters for these rows
            d = squared_distances(x[rejected[pending[exhausted]]], centroids)
            d[:, full] = math.inf
            dists[exhausted], props[exhausted] = d.min(1)
        accepted = _accept(props, dists, room)
        rows = rejected[pending[accepted]]
        labels[rows] = props[accepted]
        best[rows] = dists[accepted]
        pending = pending[~accepted]
    return labels, best


def balanced_capacity(n: int, k: int, slack: float) -> int:
    """Items a cluster may take in balanced k-means: `ceil(n / K * (1 + slack))`, never below `ceil(n/K)`."""
    return max(math.ceil(n / k), math.ceil(n / k * (1.0 + slack)))


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each next centroid drawn with probability proportional to squared distance.

    Duplicate points are handled: when every remaining distance is zero, the next seed is drawn
    uniformly (the fit then simply has identical centroids, and Lloyd reseeds them if empty).
    """
    n = x.shape[0]
    x_norm = (x * x).sum(1)
    first = int(torch.randint(n, (1,), generator=generator))
    chosen = [first]
    best = (x_norm - 2.0 * (x @ x[first]) + x_norm[first]).clamp_min_(0.0)
    for _ in range(1, k):
        total = float(best.sum())
        if total > 0.0 and math.isfinite(total):
            idx = int(torch.multinomial(best.cpu() / total, 1, generator=generator))
        else:
            idx = int(torch.randint(n, (1,), generator=generator))
        chosen.append(idx)
        d = (x_norm - 2.0 * (x @ x[idx]) + x_norm[idx]).clamp_min_(0.0)
        torch.minimum(best, d, out=best)
    return x[torch.tensor(chosen, device=x.device)].clone()


def _update_centroids(
    x: torch.Tensor, labels: torch.Tensor, dist: torch.Tensor, centroids: torch.Tensor
) -> torch.Tensor:
    """Mean of each cluster; an empty cluster is reseeded at the rows worst served by their centroid."""
    k, d = centroids.shape
    sums = torch.zeros(k, d, dtype=x.dtype, device=x.device).index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=k)
    new = sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype)
    empty = torch.nonzero(counts == 0).flatten()
    if empty.numel():
        worst = torch.argsort(dist, descending=True, stable=True)[: empty.numel()]
        new[empty[: worst.numel()]] = x[worst]
    return new


@contextmanager
def _threads_for(work: int, device: torch.device) -> Iterator[None]:
    """Run a small CPU fit on one thread, restoring the thread count afterwards.

    A small fit is thousands of tiny ops; with several threads each pays a synchronisation, and
    when other processes share the cores that costs 20x (ML-100k: 0.3 s on one thread, 7 s on
    two, measured on a busy 2-core machine). Large fits keep every thread: their matmuls gain.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or work >= _SMALL_WORK or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_kmeans(
    x: torch.Tensor,
    k: int,
    *,
    iters: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
    sample_size: int | None = None,
    balanced: bool = False,
    balance_slack: float = 0.0,
) -> KMeansResult:
    """Fit `k` centroids to the rows of `x` (float32, any device) and label every row.

    Centroids are fitted on a seeded subsample of `sample_size` rows (all rows when None or when `x`
    is smaller); Lloyd iterations stop when the relative inertia improvement falls below `tol`.
    The result is deterministic for a seed on a given device and thread count.
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= n rows, got k={k}, n={n}")
    rows = n if sample_size is None else min(n, max(sample_size, k))
    with _threads_for(rows * k * x.shape[1], x.device):
        return _fit_kmeans(
            x,
            k,
            iters=iters,
            tol=tol,
            seed=seed,
            sample_size=sample_size,
            balanced=balanced,
            balance_slack=balance_slack,
        )


def _fit_kmeans(
    x: torch.Tensor,
    k: int,
    *,
    iters: int,
    tol: float,
    seed: int,
    sample_size: int | None,
    balanced: bool,
    balance_slack: float,
) -> KMeansResult:
    n = x.shape[0]
    generator = torch.Generator().manual_seed(seed)
    if sample_size is not None and n > max(sample_size, k):
        sample = x[torch.randperm(n, generator=generator)[: max(sample_size, k)].to(x.device)]
    else:
        sample = x
    init_size = min(sample.shape[0], max(k, _INIT_POINTS_PER_CLUSTER * k))
    init_rows = torch.randperm(sample.shape[0], generator=generator)[:init_size].to(x.device)
    centroids = kmeans_plus_plus(sample[init_rows], k, generator)

    def assign(points: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if balanced:
            return assign_balanced(points, centres, balanced_capacity(points.shape[0], k, balance_slack))
        return assign_nearest(points, centres)

    previous = math.inf
    iterations = 0
    while iterations < iters:
        iterations += 1
        labels, dist = assign(sample, centroids)
        inertia = float(dist.sum())
        centroids = _update_centroids(sample, labels, dist, centroids)
        if previous < math.inf and previous - inertia <= tol * max(previous, 1e-12):
            break
        previous = inertia
    labels, dist = assign(x, centroids)
    return KMeansResult(centroids=centroids, labels=labels, inertia=float(dist.sum()), iterations=iterations)
