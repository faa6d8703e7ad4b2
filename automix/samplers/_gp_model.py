"""The cost-aware samplers' model: a small exact Gaussian process, optionally over a trend, and log EI.

`CostAwareSampler` (automix/samplers/_cost.py) fits it to the COMPLETE trials on the unit cube
(`Encoder`) at every suggestion: `GP` (Matern 5/2, ARD, MAP hyperparameters; numpy + scipy),
optionally under a linear trend of the loss in log cost (`fit_model`'s `trend`, the sampler
`costtrend`: cheap trials extrapolate to dear ones), and `log_ei`, which the sampler weighs
against cost.
"""

from __future__ import annotations

import math

import numpy as np


def log_ei(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """log expected improvement below `best` of normal predictions, stable far in the tail.

    Args:
        mean: Predicted means (lower is better).
        std: Predicted standard deviations (floored at 1e-12).
        best: The best (lowest) value observed so far.

    Returns:
        log E[max(best − Y, 0)] for each Y ~ N(mean, std²), finite even where the improvement's
        probability underflows, so far-off candidates stay ranked.

    Example:
        ::

            import numpy as np
            from automix.samplers._gp_model import log_ei

            log_ei(np.array([0.0, 1.0, 5.0]), np.array([1.0, 1.0, 0.1]), best=0.5)  # falling
    """
    from scipy.special import log_ndtr

    std = np.maximum(std, 1e-12)
    z = (best - mean) / std
    log_phi = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
    # h(z) = φ(z) + zΦ(z); for z << 0 it is φ(z)/z² to leading order, which keeps candidates ranked.
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = np.log(np.maximum(np.exp(log_phi) + z * np.exp(log_ndtr(z)), 1e-300))
        tail = log_phi - 2 * np.log(np.abs(z))
    return np.log(std) + np.where(z > -5, direct, tail)


def _matern52(a: np.ndarray, b: np.ndarray, lengthscales: np.ndarray) -> np.ndarray:
    r = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) / lengthscales) ** 2, 0).sum(-1) * 5.0)
    return (1.0 + r + r**2 / 3.0) * np.exp(-r)


class GP:
    """A Matern-5/2 ARD Gaussian process on the unit cube, hyperparameters by MAP (numpy + scipy).

    Small and exact: at 100 trials a fit is a few hundred 100×100 Cholesky factorizations. The
    lengthscale prior follows BoTorch's `SingleTaskGP` default (log-normal, scaled with √d); the noise
    prior is tiny: the objective is deterministic, and the goal (within 0.5% of the best) is finer
    than a default noise level would resolve.

    Args:
        x: Training inputs, shape (n, d), in [0, 1]^d.
        y: Training targets, shape (n,); standardized inside.
        start: Log hyperparameters (d lengthscales, variance, noise) to start the MAP fit from, e.g.
            the previous fit's `theta`; None (or the wrong length): the prior's location.

    Example:
        ::

            import numpy as np
            from automix.samplers._gp_model import GP

            x = np.random.default_rng(0).random((12, 2))
            gp = GP(x, ((x - 0.3) ** 2).sum(1))
            mean, std = gp.predict(np.array([[0.3, 0.3], [0.9, 0.9]]))
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, start: np.ndarray | None = None):
        from scipy.optimize import minimize

        self.x, d = x, x.shape[1]
        self.mu, self.sd = float(y.mean()), float(y.std()) or 1.0
        self.y = (y - self.mu) / self.sd
        self._prior_loc = math.sqrt(2) + 0.5 * math.log(d)
        theta0 = start if start is not None and len(start) == d + 2 else np.r_[np.full(d, self._prior_loc), 0.0, -12.0]
        bounds = [(-4.0, 5.0)] * d + [(-3.0, 3.0), (-18.0, -2.0)]
        fit = minimize(self._neg_log_post, theta0, method="L-BFGS-B", bounds=bounds, options={"maxiter": 60})
        self.theta = fit.x if np.isfinite(fit.fun) else theta0
        self._factor()

    def _parts(self, theta: np.ndarray):
        ls, var, noise = np.exp(theta[:-2]), math.exp(theta[-2]), math.exp(theta[-1]) + 1e-8
        k = var * _matern52(self.x, self.x, ls) + noise * np.eye(len(self.x))
        return ls, var, np.linalg.cholesky(k)

    def _neg_log_post(self, theta: np.ndarray) -> float:
        try:
            _, _, chol = self._parts(theta)
        except np.linalg.LinAlgError:
            return 1e10
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, self.y))
        nll = 0.5 * self.y @ alpha + np.log(np.diag(chol)).sum()
        prior = ((theta[:-2] - self._prior_loc) ** 2).sum() / (2 * 3.0) + (theta[-1] + 12.0) ** 2 / 8.0
        return float(nll + prior)

    def _factor(self) -> None:
        self.ls, self.var, self.chol = self._parts(self.theta)
        self.alpha = np.linalg.solve(self.chol.T, np.linalg.solve(self.chol, self.y))

    def predict(self, x_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std (noise-free) at `x_new`, in the units of y.

        Args:
            x_new: Points, shape (m, d), in [0, 1]^d.

        Returns:
            (mean, std), each of shape (m,).
        """
        ks = self.var * _matern52(x_new, self.x, self.ls)
        v = np.linalg.solve(self.chol, ks.T)
        var = np.maximum(self.var - (v**2).sum(0), 1e-12)
        return self.mu + self.sd * ks @ self.alpha, self.sd * np.sqrt(var)


def fit_model(x: np.ndarray, y: np.ndarray, trend: np.ndarray, start: np.ndarray | None = None):
    """y = a + b·trend + GP(x) with b ≤ 0: its predictor and the GP's hyperparameters.

    Args:
        x: Training inputs, shape (n, d), in [0, 1]^d.
        y: Training targets, shape (n,) (lower is better).
        trend: Each input's trend coordinate, shape (n,): log cost scaled to [0, 1] for
            `costtrend`, zeros for no trend (then a is the mean and b is 0).
        start: Log hyperparameters to start the GP's fit from (the previous fit's).

    Returns:
        (predict, theta): `predict(x_new, trend_new) -> (mean, std)`, and the GP's fitted log
        hyperparameters (the next fit starts from them).

    Example:
        ::

            import numpy as np
            from automix.samplers._gp_model import fit_model

            x = np.random.default_rng(0).random((10, 2))
            trend = x[:, 0]  # e.g. log cost, scaled to [0, 1]
            predict, theta = fit_model(x, 2.0 - trend, trend)
            mean, std = predict(np.array([[1.0, 0.5]]), np.array([1.0]))  # about 1.0
    """
    design = np.stack([np.ones_like(trend), trend], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    coef[1] = min(coef[1], 0.0)  # the trend may only say "more tokens, lower loss", never the reverse
    coef[0] = float(np.mean(y - coef[1] * trend))
    gp = GP(x, y - design @ coef, start)

    def predict(x_new: np.ndarray, t_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = gp.predict(x_new)
        return mean + coef[0] + coef[1] * t_new, std

    return predict, gp.theta
