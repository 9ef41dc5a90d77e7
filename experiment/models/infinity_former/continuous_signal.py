"""The infinity-former's continuous signal: Gaussian radial basis functions, the ridge-regression fit, continuous
softmax, the KL regulariser and sticky-memory sampling.

A sequence of P vectors x_1..x_P at positions t_1..t_P in [0, 1] becomes the continuous signal
x(t) = B^T psi(t), where psi(t) = [N(t; c_j, s_j^2)]_j holds N Gaussian basis functions and B [N, D] is the
ridge-regression fit B = (F F^T + lambda I)^-1 F X with F = [psi(t_1), ..., psi(t_P)] [N, P].
A query reads the signal through a Gaussian density p = N(mu, sigma^2): E_p[psi_j(t)] over the real line is
N(mu; c_j, sigma^2 + s_j^2), the integral of a product of two Gaussians.
"""

import math
from typing import Dict, Sequence, Tuple

import torch


class GaussianBasis:
    """N Gaussian radial basis functions: for each width, N / len(widths) centres on an even grid over [0, 1].

    Args:
        num_basis: N, a multiple of ``len(widths)``.
        widths: the standard deviations s of the basis functions.
    """

    def __init__(self, num_basis: int, widths: Sequence[float]) -> None:
        if num_basis <= 0 or num_basis % len(widths) != 0:
            raise ValueError(f"num_basis must be a positive multiple of len(widths) = {len(widths)}, got {num_basis}")
        self.num_basis = num_basis
        self._per_width = num_basis // len(widths)
        self._width_values = [float(width) for width in widths]
        self._cache: Dict[Tuple, torch.Tensor] = {}  # ridge solvers and centres/widths, per device and dtype

    @property
    def centres(self) -> torch.Tensor:
        """The centres c_j shaped [N], float64 (each width's centres on an even grid over [0, 1])."""
        # made on use, never at construction: models are built on the meta device when loaded
        return torch.linspace(0.0, 1.0, self._per_width, dtype=torch.float64, device="cpu").repeat(
            len(self._width_values)
        )

    @property
    def widths(self) -> torch.Tensor:
        """The widths s_j shaped [N], float64."""
        values = torch.tensor(self._width_values, dtype=torch.float64, device="cpu")
        return values.repeat_interleave(self._per_width)

    def evaluate(self, positions: torch.Tensor) -> torch.Tensor:
        """psi(t) at every position.

        Args:
            positions: t shaped [..., P].

        Returns:
            shaped [..., P, N], in the dtype of ``positions``.
        """
        centres, widths = self._parameters_like(positions)
        return gaussian_density(positions[..., None], centres, widths**2)

    def ridge_solver(self, positions: torch.Tensor, penalty: float, device: torch.device) -> torch.Tensor:
        """G = (F F^T + lambda I)^-1 F for fixed positions, so that the fit of X [.., P, D] is B = G X.

        Computed in float64 on the CPU once per (positions, penalty, device) and cached.

        Args:
            positions: t shaped [P], on the CPU (they are the cache key).
            penalty: lambda > 0.
            device: where the solver is wanted.

        Returns:
            shaped [N, P], float32, on ``device``.
        """
        if positions.device.type != "cpu":
            raise ValueError(f"positions of a ridge fit must be on the CPU, got {positions.device}")
        key = (tuple(positions.tolist()), penalty, torch.device(device))
        if key not in self._cache:
            design = self.evaluate(positions.detach().to(torch.float64)).T  # [N, P]
            gram = design @ design.T + penalty * torch.eye(self.num_basis, dtype=torch.float64)
            self._cache[key] = torch.linalg.solve(gram, design).to(device=device, dtype=torch.float32)
        return self._cache[key]

    def fit(self, values: torch.Tensor, positions: torch.Tensor, penalty: float) -> torch.Tensor:
        """Ridge-regression coefficients B of the signal through ``values`` at ``positions``.

        Args:
            values: X shaped [BatchSize, P, HiddenDim].
            positions: t shaped [P], on the CPU.
            penalty: lambda > 0.

        Returns:
            B shaped [BatchSize, N, HiddenDim], float32, on the device of ``values``.
        """
        return self.ridge_solver(positions, penalty, values.device) @ values.float()

    def reconstruct(self, coefficients: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The signal x(t) = B^T psi(t) at ``positions``.

        Args:
            coefficients: B shaped [BatchSize, N, HiddenDim].
            positions: t shaped [P] or [BatchSize, P].

        Returns:
            shaped [BatchSize, P, HiddenDim].
        """
        return self.evaluate(positions.to(coefficients.dtype)) @ coefficients

    def expectation(self, mu: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
        """E_p[psi(t)] under p = N(mu, variance), integrated over the real line: N(mu; c_j, variance + s_j^2).

        Args:
            mu: shaped [...].
            variance: sigma^2 > 0 shaped like ``mu``.

        Returns:
            shaped [..., N].
        """
        centres, widths = self._parameters_like(mu)
        return gaussian_density(mu[..., None], centres, variance[..., None] + widths**2)

    def _parameters_like(self, tensor: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The centres and widths, each shaped [N], in the dtype and on the device of ``tensor`` (cached)."""
        key = ("parameters", tensor.dtype, tensor.device)
        if key not in self._cache:
            self._cache[key] = torch.stack([self.centres, self.widths]).to(tensor)
        centres, widths = self._cache[key]
        return centres, widths


def gaussian_density(x: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """N(x; mean, variance), broadcasting its arguments."""
    return torch.exp(-((x - mean) ** 2) / (2 * variance)) / torch.sqrt(2 * math.pi * variance)


def kl_to_reference(variance: torch.Tensor, reference_std: float) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(mu, sigma_0^2)) = log(sigma_0 / sigma) + sigma^2 / (2 sigma_0^2) - 1/2.

    The reference shares the query's mean, so only the width is regularised: it keeps sigma^2 from collapsing.

    Args:
        variance: sigma^2 > 0 shaped [...].
        reference_std: sigma_0 > 0.

    Returns:
        shaped like ``variance``.
    """
    return math.log(reference_std) - 0.5 * torch.log(variance) + variance / (2 * reference_std**2) - 0.5


def attention_histogram(mu: torch.Tensor, variance: torch.Tensor, num_bins: int) -> torch.Tensor:
    """How much of the queries' attention densities falls in each of ``num_bins`` even bins over [0, 1].

    Args:
        mu: the queries' means shaped [BatchSize, ...].
        variance: their variances shaped like ``mu``.
        num_bins: the number of bins.

    Returns:
        per-row probabilities shaped [BatchSize, NumBins] (each row sums to 1; uniform where no mass fell in
        [0, 1]).
    """
    edges = torch.linspace(0.0, 1.0, num_bins + 1, device=mu.device, dtype=torch.float32)  # [NumBins + 1]
    mu, std = mu.float().flatten(1)[..., None], variance.float().sqrt().flatten(1)[..., None]  # [B, Q, 1]
    cumulative = torch.special.ndtr((edges - mu) / std)  # [B, Q, NumBins + 1]
    mass = (cumulative[..., 1:] - cumulative[..., :-1]).sum(dim=1)  # [B, NumBins]
    total = mass.sum(dim=-1, keepdim=True)
    uniform = torch.full_like(mass, 1.0 / num_bins)
    return torch.where(total > 0, mass / total.clamp_min(torch.finfo(mass.dtype).tiny), uniform)


def sample_positions(histogram: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Draws sorted positions in [0, 1] from a piecewise-uniform density given by a histogram (sticky memories).

    Each row draws its own uniform numbers from torch's global generator (one [BatchSize, M] draw), so the
    positions are reproducible under ``torch.manual_seed`` and a row's positions do not depend on other rows.

    Args:
        histogram: per-row bin probabilities shaped [BatchSize, NumBins], each row summing to 1.
        num_samples: M.

    Returns:
        shaped [BatchSize, M], ascending in each row.
    """
    batch_size, num_bins = histogram.shape
    uniform = torch.rand(batch_size, num_samples, device=histogram.device)  # [B, M]
    cumulative = histogram.float().cumsum(dim=-1)  # [B, NumBins]
    cumulative = cumulative / cumulative[:, -1:]
    bins = torch.searchsorted(cumulative, uniform, right=True).clamp_max(num_bins - 1)  # [B, M]
    below = torch.where(bins > 0, cumulative.gather(-1, (bins - 1).clamp_min(0)), torch.zeros_like(uniform))
    mass = histogram.float().gather(-1, bins)
    # where the draw fell inside its bin, mapped linearly onto the bin's width
    within = ((uniform - below) / mass.clamp_min(torch.finfo(mass.dtype).tiny)).clamp(0.0, 1.0)
    return ((bins + within) / num_bins).sort(dim=-1).values


def even_positions(start: float, end: float, count: int, device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """The midpoints of ``count`` equal cells covering [start, end], shaped [count]."""
    return start + (end - start) * (torch.arange(count, device=device, dtype=torch.float32) + 0.5) / count
