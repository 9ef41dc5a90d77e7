"""Similarity kernels that rank stored engrams against this step's working memory.

A kernel maps working memory shaped [B, W, D] and keys shaped [B, S, D] to per-pair scores shaped [B, W, S];
higher means closer. Recall reduces them over W (see :func:`reduce_scores`). Distances are computed by matrix
products (||w||^2 + ||k||^2 - 2 w.k), never by a broadcast [B, W, S, D] difference.
"""

from typing import TYPE_CHECKING, Callable, Dict, Optional, Union

import torch

if TYPE_CHECKING:
    from .store import EngramStore

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def squared_distance(
    working: torch.Tensor, keys: torch.Tensor, key_sqnorm: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Squared euclidean distances.

    Args:
        working: shaped [BatchSize, WorkingLength, HiddenDim].
        keys: shaped [BatchSize, KeyLength, HiddenDim] (any strides).
        key_sqnorm: the keys' squared norms shaped [BatchSize, KeyLength], if known.

    Returns:
        shaped [BatchSize, WorkingLength, KeyLength], clamped at 0 against rounding.
    """
    if key_sqnorm is None:
        key_sqnorm = keys.pow(2).sum(-1)
    distance = torch.baddbmm(key_sqnorm.unsqueeze(1), working, keys.transpose(1, 2), alpha=-2.0)  # [B, W, S]
    return distance.add_(working.pow(2).sum(-1, keepdim=True)).clamp_(min=0)


def gaussian(working: torch.Tensor, keys: torch.Tensor, key_sqnorm: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The paper's Gaussian kernel exp(-||w - k||^2), returned in log space: -||w - k||^2.

    The log form ranks exactly like the kernel while staying finite where exp underflows (squared distances
    beyond ~100, which LayerNorm-scale hidden states always reach). Recall pools it with log-sum-exp.
    """
    return squared_distance(working, keys, key_sqnorm).neg_()


def l2(working: torch.Tensor, keys: torch.Tensor, key_sqnorm: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Negative squared euclidean distance (what memoria-pytorch 1.1.0 ranks by), pooled arithmetically."""
    return squared_distance(working, keys, key_sqnorm).neg_()


def cosine(working: torch.Tensor, keys: torch.Tensor, key_sqnorm: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Cosine similarity; zero vectors (padding) score 0."""
    if key_sqnorm is None:
        key_sqnorm = keys.pow(2).sum(-1)
    dots = torch.bmm(torch.nn.functional.normalize(working, dim=-1), keys.transpose(1, 2))  # [B, W, S]
    return dots.div_(key_sqnorm.sqrt().clamp(min=1e-12).unsqueeze(1))


KERNELS = {"gaussian": gaussian, "l2": l2, "cosine": cosine}


class Similarity:
    """A named or user-supplied kernel together with the way its scores are pooled over working memory.

    Args:
        kernel: "gaussian" (default; log-space Gaussian, pooled by log-mean-exp), "l2" or "cosine" (pooled by
            the mean), or a callable ``f(working [B, W, D], keys [B, S, D]) -> scores [B, W, S]`` pooled by the
            mean, like the reference pools exp(-d^2).
    """

    def __init__(self, kernel: Union[str, Kernel] = "gaussian") -> None:
        if isinstance(kernel, str):
            if kernel not in KERNELS:
                raise ValueError(f"similarity must be one of {sorted(KERNELS)} or a callable, got {kernel!r}")
            self.name = kernel
            self.kernel = KERNELS[kernel]
            self.named = True
            self.log_space = kernel == "gaussian"
        elif callable(kernel):
            self.name = getattr(kernel, "__name__", type(kernel).__name__)
            self.kernel = kernel
            self.named = False
            self.log_space = False
        else:
            raise TypeError(f"similarity must be a kernel name or a callable, got {type(kernel).__name__}")

    def scores(
        self, working: torch.Tensor, keys: torch.Tensor, key_sqnorm: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Pairwise scores shaped [BatchSize, WorkingLength, KeyLength] (``key_sqnorm`` for named kernels only)."""
        scores = self.kernel(working, keys, key_sqnorm) if self.named else self.kernel(working, keys)
        if scores.shape != working.shape[:2] + keys.shape[1:2]:
            raise ValueError(
                f"similarity {self.name} returned shape {tuple(scores.shape)}, expected "
                f"{tuple(working.shape[:2] + keys.shape[1:2])} [BatchSize, WorkingLength, KeyLength]"
            )
        return scores

    def pooled(self, working: torch.Tensor, keys: torch.Tensor, reduce: str = "mean") -> torch.Tensor:
        """Scores pooled over working memory: shaped [BatchSize, KeyLength].

        Args:
            reduce: "mean" (STM recall) or "sum" (final LTM selection), as the reference pools them. Log-space
                kernels are pooled by log-sum-exp, which ranks exactly like the mean or sum of the kernel itself.
        """
        return self.pool(self.scores(working, keys), reduce)

    def pool(self, scores: torch.Tensor, reduce: str) -> torch.Tensor:
        """Pool pairwise scores [BatchSize, WorkingLength, KeyLength] over working memory: [BatchSize, KeyLength]."""
        if self.log_space:
            return _logsumexp(scores, dim=1)
        return scores.mean(dim=1) if reduce == "mean" else scores.sum(dim=1)

    def __repr__(self) -> str:
        return f"Similarity({self.name})"


class WorkingMemoryQuery:
    """This step's working memory as a query over the store: the pooled similarity of the engrams asked for.

    Only the engrams asked for are scored. With a named kernel, engrams stored side by side (short-term memory
    is) are scored in place (``EngramStore.key_window``); scattered ones (the engrams a graph walk found) on
    their gathered vectors. A user callable is always called on the gathered vectors. Position -1, and padding,
    score as a zero vector.

    Args:
        similarity: the kernel and its pooling.
        working: shaped [BatchSize, WorkingLength, HiddenDim].
        store: the :class:`~memoria.store.EngramStore`.
    """

    def __init__(self, similarity: Similarity, working: torch.Tensor, store: "EngramStore") -> None:
        self.similarity = similarity
        self.working = working
        self.store = store
        self._zero: Dict[str, torch.Tensor] = {}

    def scores(self, positions: torch.Tensor, reduce: str) -> torch.Tensor:
        """Pooled scores of the engrams at ``positions`` [BatchSize, P]: shaped [BatchSize, P].

        Args:
            reduce: "mean" or "sum" over working memory (see :meth:`Similarity.pooled`).
        """
        if self.similarity.log_space:
            reduce = "mean"  # log-sum-exp pools both ways
        window = self.store.key_window(positions) if self.similarity.named else None
        if window is None:
            return self._gathered(positions, reduce)
        scores = self.similarity.scores(self.working, window.vectors, window.sqnorm)  # [B, W, K]
        scores = self.similarity.pool(scores, reduce).gather(1, window.columns.clamp(min=0))  # [B, P]
        return torch.where(window.columns >= 0, scores, self._zero_score(reduce))

    def _gathered(self, positions: torch.Tensor, reduce: str) -> torch.Tensor:
        """Scores of the vectors at ``positions`` [BatchSize, P], gathered (zero vectors at -1 and padding)."""
        vectors = self.store.data_at(positions)  # [B, P, D]
        if not self.similarity.named:
            return self.similarity.pooled(self.working, vectors, reduce=reduce)
        sqnorm = self.store.sqnorm_at(positions)  # [B, P]
        return self.similarity.pool(self.similarity.scores(self.working, vectors, sqnorm), reduce)

    def _zero_score(self, reduce: str) -> torch.Tensor:
        """The pooled score of a zero vector, shaped [BatchSize, 1]."""
        if reduce not in self._zero:
            if self.similarity.name in ("gaussian", "l2"):  # -||w - 0||^2, computed as squared_distance does
                scores = self.working.pow(2).sum(-1, keepdim=True).neg_()  # [B, W, 1]
                self._zero[reduce] = self.similarity.pool(scores, reduce)
            else:
                zeros = self.working.new_zeros(self.working.size(0), 1, self.working.size(2))
                self._zero[reduce] = self.similarity.pooled(self.working, zeros, reduce=reduce)
        return self._zero[reduce]


def _logsumexp(scores: torch.Tensor, dim: int) -> torch.Tensor:
    """log(sum(exp(scores))) along ``dim``, stable, and without denormal exponentials.

    Terms more than 87 below the largest are raised to exp(-87) ~ 1.6e-38 instead of becoming denormal (which
    CPUs compute slowly); the sum is >= 1, so in float32 the result is the same.
    """
    finite = torch.finfo(scores.dtype).max
    top = scores.amax(dim=dim, keepdim=True).clamp_(-finite, finite)  # an infinite top gives the same as 0 would
    total = (scores - top).clamp_(min=-87.0).exp_().sum(dim=dim)
    return total.log_().add_(top.squeeze(dim))
