"""Out-of-fold logistic regression for every class and fold at once: the NumPy side of
`labelqa predict`.

One binary logistic regression per (fold, class): the model of fold f is trained on every row
whose fold is not f and predicts the rows of fold f, so no example's probability comes from a
model that saw its label. The engine passes over the data once per evaluation and each pass
returns, for all F x K problems together, the loss and gradient sums (`evaluate`); the driver
adds the partitions' sums and steps every problem with its own L-BFGS memory and its own
backtracking line search (`LockstepLbfgs`). MLlib's LogisticRegression fits one class of one
fold at a time, each fit with its own passes over the data: F x K times the passes (measured
in the README, "No predictions yet?").

Objective of each problem (the one scikit-learn's LogisticRegression minimises with
C = 1 / (l2 * n_train)):  mean log loss over its training rows + l2 / 2 * |w|^2, the
intercept not penalised. Features are standardised first (mean 0, variance 1 over all rows:
label-free, so it leaks no label).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelqa.core.arrays import Floats, Ints, Mask


@dataclass(frozen=True)
class LogisticParams:
    """The cross-validated fit (config keys `model.*`)."""

    folds: int = 5
    l2: float = 1e-4
    max_iter: int = 100  # passes over the data for the fit, at most
    tol: float = 1e-4  # a problem has converged when max |gradient| <= tol
    standardize: bool = True
    memory: int = 10  # L-BFGS correction pairs per problem
    stacked: bool = False  # a second stage that sees the other classes' probabilities


def moments(x: Floats) -> dict[str, Floats]:
    """Per-feature count, sum and sum of squares of one block (float64)."""
    values = np.asarray(x, dtype=np.float64)
    return {"count": np.array([values.shape[0]], dtype=np.float64),
            "sum": values.sum(axis=0), "sum_squares": np.einsum("ij,ij->j", values, values)}


def standardizer(totals: dict[str, Floats], standardize: bool) -> tuple[Floats, Floats]:
    """(mean, scale) with x' = (x - mean) * scale; a constant feature gets scale 0."""
    n = float(totals["count"][0])
    mean = totals["sum"] / n
    if not standardize:
        return np.zeros_like(mean), np.ones_like(mean)
    variance = np.maximum(totals["sum_squares"] / n - mean * mean, 0.0)
    std = np.sqrt(variance)
    scale = np.divide(1.0, std, out=np.zeros_like(std), where=std > 1e-12 * (1 + np.abs(mean)))
    return mean, scale


def design(x: Floats, mean: Floats, scale: Floats) -> Floats:
    """The standardised features with a last column of ones (the intercept), float64."""
    out = np.empty((x.shape[0], x.shape[1] + 1), dtype=np.float64)
    np.subtract(x, mean, out=out[:, :-1])
    out[:, :-1] *= scale
    out[:, -1] = 1.0
    return out


def _logits(x1: Floats, weights: Floats) -> Floats:
    """(n, F, K) logits of every row under every fold's model; weights (F, D, K)."""
    num_folds, width, num_classes = weights.shape
    flat = weights.transpose(1, 0, 2).reshape(width, num_folds * num_classes)
    logits: Floats = (x1 @ flat).reshape(x1.shape[0], num_folds, num_classes)
    return logits


def _sigmoid(z: Floats) -> Floats:
    out: Floats = np.exp(-np.logaddexp(0.0, -z))
    return out


def _loss_and_residual(z: Floats, y: Mask) -> tuple[Floats, Floats]:
    """Per element: the log loss softplus(z) - y z, and sigmoid(z) - y, from one exp and one
    log1p (measured: a third of the time of logaddexp plus a separate sigmoid)."""
    e = np.exp(-np.abs(z))
    loss = np.log1p(e)
    loss += np.maximum(z, 0.0)
    loss -= np.where(y, z, 0.0)
    residual = np.where(z >= 0, 1.0, e)
    e += 1.0
    residual /= e
    residual -= y
    return loss, residual


def fold_training(folds: Ints, num_folds: int) -> Mask:
    """(n, F): row r trains the model of fold f when its own fold is not f."""
    train: Mask = folds[:, None] != np.arange(num_folds)[None, :]
    return train


def nested_training(folds: Ints, num_folds: int) -> Mask:
    """(n, F * F): the stacked option's first stage. Slot f * F + g trains on the rows in
    neither fold f nor fold g; slot f * F + f is fold f's plain model."""
    outer = np.repeat(np.arange(num_folds), num_folds)
    inner = np.tile(np.arange(num_folds), num_folds)
    train: Mask = (folds[:, None] != outer[None, :]) & (folds[:, None] != inner[None, :])
    return train


def evaluate(x1: Floats, given: Mask, train: Mask, weights: Floats) -> dict[str, Floats]:
    """Sums over one block's training rows of every (model, class) problem: the log loss
    (S, K), its gradient (S, D, K) and the training rows per model (S,); `train` (n, S)."""
    num_models, width, num_classes = weights.shape
    z = _logits(x1, weights)
    loss, residual = _loss_and_residual(z, given[:, None, :])
    residual *= train[:, :, None]
    grad = (x1.T @ residual.reshape(x1.shape[0], num_models * num_classes)).reshape(
        width, num_models, num_classes).transpose(1, 0, 2)
    return {"loss": np.einsum("nfk,nf->fk", loss, train.astype(np.float64)),
            "grad": np.ascontiguousarray(grad), "rows": train.sum(axis=0).astype(np.float64)}


def held_out(x1: Floats, folds: Ints, weights: Floats) -> Floats:
    """(n, K) probability of each row under its own fold's model (that never saw it)."""
    z = _logits(x1, weights)
    return _sigmoid(z[np.arange(x1.shape[0]), folds, :])


# ---- the stacked option: a second stage that sees the other classes' probabilities -------
#
# Stage 2's model of fold f (trained on the rows outside f) takes, beside the features, the
# first stage's probabilities of every class. For a row r those must come from a model that saw
# neither r's label (so the input is out-of-fold for r) nor fold f's labels (so stage 2's
# model f, which predicts fold f, learns nothing from them): the first-stage model of slot
# (f, fold(r)), trained outside both folds. For a row of fold f itself that is slot (f, f),
# fold f's plain model. Each class's model does not see its own class's first-stage
# probability (`own_class_frozen`): only the other classes'.

def first_stage_probabilities(x1: Floats, folds: Ints, nested: Floats) -> Floats:
    """(n, F, K): for each row and each stage-2 model f, the probabilities of slot
    (f, fold(row)) of the nested first stage `nested` (F * F, D, K). Probabilities, not
    logits: a logit is linear in the features, so stage 2 would see the features again
    (measured: with logits the second stage did not converge in 100 passes)."""
    num_folds = int(round(np.sqrt(nested.shape[0])))
    z = _logits(x1, nested).reshape(x1.shape[0], num_folds, num_folds, nested.shape[2])
    return _sigmoid(z[np.arange(x1.shape[0]), :, folds, :])  # (n, F, K): slot (f, fold(r))


def stacked_design(x1: Floats, stage1: Floats, fold: int) -> Floats:
    """Stage 2's inputs for model `fold`: the features, the first stage's K probabilities,
    the 1."""
    return np.concatenate([x1[:, :-1], stage1[:, fold, :], x1[:, -1:]], axis=1)


def own_class_frozen(num_features: int, num_classes: int) -> Mask:
    """(D2, K): the stage-2 weight of class k on its own first-stage probability, held at
    0."""
    frozen = np.zeros((num_features + num_classes + 1, num_classes), dtype=bool)
    frozen[num_features + np.arange(num_classes), np.arange(num_classes)] = True
    return frozen


def evaluate_stacked(x1: Floats, stage1: Floats, given: Mask, folds: Ints,
                     weights: Floats) -> dict[str, Floats]:
    """`evaluate` for stage 2: weights (F, D + K, K) over `stacked_design`'s inputs."""
    num_folds, width, num_classes = weights.shape
    loss = np.zeros((num_folds, num_classes))
    grad = np.zeros((num_folds, width, num_classes))
    train = fold_training(folds, num_folds)
    for fold in range(num_folds):
        design_f = stacked_design(x1, stage1, fold)
        each, residual = _loss_and_residual(design_f @ weights[fold], given)
        residual *= train[:, fold, None]
        loss[fold] = train[:, fold].astype(np.float64) @ each
        grad[fold] = design_f.T @ residual
    return {"loss": loss, "grad": grad, "rows": train.sum(axis=0).astype(np.float64)}


def held_out_stacked(x1: Floats, folds: Ints, nested: Floats, weights: Floats) -> Floats:
    """(n, K) probability of each row under stage 2's model of its own fold."""
    stage1 = first_stage_probabilities(x1, folds, nested)
    out = np.zeros((x1.shape[0], weights.shape[2]))
    for fold in range(weights.shape[0]):
        rows = folds == fold
        if rows.any():
            design_f = stacked_design(x1[rows], stage1[rows], fold)
            out[rows] = _sigmoid(design_f @ weights[fold])
    return out


def objective(sums: dict[str, Floats], weights: Floats, l2: float,
              frozen: Mask | None = None) -> tuple[Floats, Floats]:
    """Each problem's objective (S, K) and gradient (S, D, K) from the summed `evaluate`;
    `frozen` (D, K): weights held at their start (0), their gradient zeroed."""
    rows = np.maximum(sums["rows"], 1.0)[:, None]
    penalised = weights[:, :-1, :]
    value = sums["loss"] / rows + 0.5 * l2 * np.einsum("fdk,fdk->fk", penalised, penalised)
    grad = sums["grad"] / rows[:, None, :]
    grad[:, :-1, :] += l2 * penalised
    if frozen is not None:
        grad[:, frozen] = 0.0
    return value, grad


#: Armijo's sufficient-decrease constant and the smallest step tried before a problem stops
ARMIJO, MIN_STEP = 1e-4, 1e-12


class LockstepLbfgs:
    """L-BFGS for P independent problems that share every evaluation (one pass computes all
    of them): each problem keeps its own correction pairs and step length, and stops on its
    own when its gradient is small (`tol`) or its line search cannot progress.

    Usage: `weights = opt.trial()`, evaluate all problems there, `opt.tell(values, grads)`,
    until `opt.done`. Problems are (F, D, K) arrays flattened to (P, D), P = F * K.
    """

    def __init__(self, num_folds: int, width: int, num_classes: int, tol: float, memory: int):
        self.shape = (num_folds, width, num_classes)
        p = num_folds * num_classes
        self.w = np.zeros((p, width))
        self.value = np.full(p, np.inf)
        self.grad = np.zeros((p, width))
        self.direction = np.zeros((p, width))
        self.step = np.ones(p)
        self.s = np.zeros((memory, p, width))
        self.y = np.zeros((memory, p, width))
        self.rho = np.zeros((memory, p))
        self.pairs = np.zeros(p, dtype=np.int64)
        self.active = np.ones(p, dtype=bool)
        self.tol, self.memory = tol, memory
        self.evaluations = 0
        self.started = False

    def _unflatten(self, flat: Floats) -> Floats:
        f, d, k = self.shape
        out: Floats = flat.reshape(f, k, d).transpose(0, 2, 1)
        return np.ascontiguousarray(out)

    def _flatten(self, array: Floats) -> Floats:
        f, d, k = self.shape
        out: Floats = array.transpose(0, 2, 1).reshape(f * k, d)
        return out

    @property
    def weights(self) -> Floats:
        """The current (accepted) weights, (F, D, K)."""
        return self._unflatten(self.w)

    @property
    def done(self) -> bool:
        return not self.active.any()

    @property
    def converged(self) -> Mask:
        """Per problem (F, K): its gradient is within `tol`."""
        f, _, k = self.shape
        ok: Mask = (np.abs(self.grad).max(axis=1) <= self.tol).reshape(f, k)
        return ok

    def trial(self) -> Floats:
        if not self.started:
            return self.weights
        moved = self.w + np.where(self.active, self.step, 0.0)[:, None] * self.direction
        return self._unflatten(moved)

    def tell(self, values: Floats, grads: Floats) -> None:
        self.evaluations += 1
        value, grad = values.reshape(-1), self._flatten(grads)
        if not self.started:
            self.started = True
            self.value, self.grad = value.copy(), grad.copy()
            self.active = np.abs(grad).max(axis=1) > self.tol
            norm = np.linalg.norm(grad, axis=1)
            self.direction = -grad
            self.step = np.minimum(1.0, 1.0 / np.maximum(norm, 1e-300))
            return
        slope = np.einsum("pd,pd->p", self.grad, self.direction)
        # near the optimum the decrease falls below the objective's rounding: a step that
        # leaves it unchanged within a few ulps is accepted (the gradient still decides)
        rounding = 8 * np.finfo(np.float64).eps * np.abs(self.value)
        accepted = self.active & np.isfinite(value) \
            & (value <= self.value + ARMIJO * self.step * slope + rounding)
        rejected = self.active & ~accepted
        self.step[rejected] *= 0.5
        self.active[rejected & (self.step < MIN_STEP)] = False
        if accepted.any():
            self._accept(np.flatnonzero(accepted), value, grad)

    def _accept(self, chosen: Ints, value: Floats, grad: Floats) -> None:
        s = self.step[chosen, None] * self.direction[chosen]
        y = grad[chosen] - self.grad[chosen]
        sy = np.einsum("pd,pd->p", s, y)
        keep = sy > 1e-10 * np.maximum(np.einsum("pd,pd->p", y, y), 1e-300)
        stored = chosen[keep]
        slot = self.pairs[stored] % self.memory
        self.s[slot, stored] = s[keep]
        self.y[slot, stored] = y[keep]
        self.rho[slot, stored] = 1.0 / sy[keep]
        self.pairs[stored] += 1
        self.w[chosen] += s
        self.value[chosen], self.grad[chosen] = value[chosen], grad[chosen]
        still = np.abs(grad[chosen]).max(axis=1) > self.tol
        self.active[chosen] = still
        moving = chosen[still]
        if len(moving):
            self.direction[moving] = self._two_loop(moving)
            self.step[moving] = 1.0

    def _two_loop(self, chosen: Ints) -> Floats:
        """The L-BFGS direction -H g of each chosen problem from its own pairs."""
        q = self.grad[chosen].copy()
        count = np.minimum(self.pairs[chosen], self.memory)
        newest = self.pairs[chosen] - 1
        alphas = np.zeros((self.memory, len(chosen)))
        for age in range(self.memory):
            valid = age < count
            slot = (newest - age) % self.memory
            s, y = self.s[slot, chosen], self.y[slot, chosen]
            alpha = np.where(valid, self.rho[slot, chosen] * np.einsum("pd,pd->p", s, q), 0.0)
            q -= alpha[:, None] * y
            alphas[age] = alpha
        slot = newest % self.memory
        s, y = self.s[slot, chosen], self.y[slot, chosen]
        yy = np.einsum("pd,pd->p", y, y)
        gamma = np.where(count > 0, np.einsum("pd,pd->p", s, y) / np.maximum(yy, 1e-300), 1.0)
        r = gamma[:, None] * q
        for age in reversed(range(self.memory)):
            valid = age < count
            slot = (newest - age) % self.memory
            s, y = self.s[slot, chosen], self.y[slot, chosen]
            beta = np.where(valid, self.rho[slot, chosen] * np.einsum("pd,pd->p", y, r), 0.0)
            r += (alphas[age] - beta)[:, None] * s
        direction: Floats = -r
        descent = np.einsum("pd,pd->p", direction, self.grad[chosen]) < 0
        direction[~descent] = -self.grad[chosen][~descent]  # a bad pair: steepest descent
        self.pairs[chosen[~descent]] = 0
        return direction


def quality_sums(probs: Floats, given: Mask) -> dict[str, Floats]:
    """Per class of one block: positives, log loss sum and squared error (Brier) sum."""
    clipped = np.clip(probs, 1e-15, 1 - 1e-15)
    loss = -np.where(given, np.log(clipped), np.log1p(-clipped))
    return {"positives": given.sum(axis=0).astype(np.float64), "log_loss": loss.sum(axis=0),
            "brier": ((probs - given) ** 2).sum(axis=0)}



# ---- the whole fit, over any engine's passes -------------------------------------------------

@dataclass(frozen=True)
class FoldedRows:
    """Rows to learn from: features (n, D), annotated classes (n, K), fold of each row."""

    x: Floats
    given: Mask
    folds: Ints


#: A pass over all rows: `passes(per_rows, shared)` calls `per_rows(rows, shared)` on every
#: chunk of rows and returns the sums of the dicts it returns (Spark: one job; in memory: one
#: call). `shared` is what every call reads (the engine ships it once per pass).
PerRows = Callable[[FoldedRows, Any], dict[str, Floats]]
Passes = Callable[[PerRows, Any], dict[str, Floats]]


@dataclass(frozen=True)
class OutOfFoldModels:
    """The fitted models on standardised features: `first` (F, D + 1, K), or with the stacked
    option the nested first stage (F * F, D + 1, K) and `second` (F, D + K + 1, K)."""

    mean: Floats
    scale: Floats
    first: Floats
    second: Floats | None
    converged: Mask  # (K,): every fit of the class converged
    evaluations: int
    stage_evaluations: tuple[int, ...]

    def held_out(self, rows: FoldedRows) -> Floats:
        """(n, K) out-of-fold probabilities of the rows."""
        x1 = design(rows.x, self.mean, self.scale)
        if self.second is None:
            return held_out(x1, rows.folds, self.first)
        return held_out_stacked(x1, rows.folds, self.first, self.second)


def _moments_of(rows: FoldedRows, shared: Any) -> dict[str, Floats]:
    return moments(rows.x)


def _first_stage(rows: FoldedRows, shared: Any) -> dict[str, Floats]:
    weights, mean, scale, training, num_folds = shared
    return evaluate(design(rows.x, mean, scale), rows.given, training(rows.folds, num_folds),
                    weights)


def _second_stage(rows: FoldedRows, shared: Any) -> dict[str, Floats]:
    weights, mean, scale, first = shared
    x1 = design(rows.x, mean, scale)
    return evaluate_stacked(x1, first_stage_probabilities(x1, rows.folds, first), rows.given,
                            rows.folds, weights)


def minimise(passes: Passes, per_rows: PerRows, extra: tuple[Any, ...], num_models: int,
             width: int, num_classes: int, params: LogisticParams,
             frozen: Mask | None = None) -> LockstepLbfgs:
    """Fit `num_models` x K problems of `width` weights together: one pass per evaluation,
    at most `params.max_iter` passes."""
    optimizer = LockstepLbfgs(num_models, width, num_classes, params.tol, params.memory)
    while not optimizer.done and optimizer.evaluations < params.max_iter:
        weights = optimizer.trial()
        sums = passes(per_rows, (weights, *extra))
        if "loss" not in sums:
            raise ValueError("no rows to learn from")
        value, grad = objective(sums, weights, params.l2, frozen)
        optimizer.tell(value, grad)
    return optimizer


def fit_out_of_fold(passes: Passes, num_features: int, num_classes: int,
                    params: LogisticParams) -> OutOfFoldModels:
    """Standardise, fit every class's and fold's model (and with `params.stacked` the
    second stage): every engine's fit, over its `passes`."""
    mean, scale = standardizer(passes(_moments_of, None), params.standardize)
    num_folds = params.folds
    models = num_folds * num_folds if params.stacked else num_folds
    training = nested_training if params.stacked else fold_training
    first = minimise(passes, _first_stage, (mean, scale, training, num_folds), models,
                     num_features + 1, num_classes, params)
    converged: Mask = np.all(first.converged, axis=0)
    if not params.stacked:
        return OutOfFoldModels(mean, scale, first.weights, None, converged, first.evaluations,
                               (first.evaluations,))
    second = minimise(passes, _second_stage, (mean, scale, first.weights), num_folds,
                      num_features + num_classes + 1, num_classes, params,
                      own_class_frozen(num_features, num_classes))
    both: Mask = np.logical_and(converged, np.all(second.converged, axis=0))
    return OutOfFoldModels(mean, scale, first.weights, second.weights, both,
                           first.evaluations + second.evaluations,
                           (first.evaluations, second.evaluations))


def fit_in_memory(x: Floats, given: Mask, folds: Ints, params: LogisticParams
                  ) -> OutOfFoldModels:
    """`fit_out_of_fold` on rows held in memory (one chunk)."""
    rows = FoldedRows(np.asarray(x), np.asarray(given, dtype=bool),
                      np.asarray(folds, dtype=np.int64))
    return fit_out_of_fold(lambda per_rows, shared: per_rows(rows, shared), x.shape[1],
                           given.shape[1], params)
