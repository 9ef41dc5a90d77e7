"""Configuration of the Compressive Transformer baseline: Transformer-XL's memory plus a compressed memory."""

from huggingface_hub.dataclasses import strict

from ..inputs import check_minimums
from ..transfo_xl.configuration_transfo_xl import TransfoXLConfig


@strict
class CompressiveTransformerConfig(TransfoXLConfig):
    """The Compressive Transformer (Rae et al., 2020): every Transformer-XL field, plus the compressed memory.

    ``mem_len`` is the size of the (uncompressed) memory, the paper's n_m. States leaving it are compressed.

    Fields:
        cmem_len: how many compressed slots each layer keeps per row (the paper's n_cm); 0 discards what leaves
            the memory, which makes the model a Transformer-XL with an unused compression.
        compression_rate: c, how many memory slots one compressed slot stands for (kernel and stride of the
            1-D convolution); ``mem_len`` must be at least c.
        reconstruction_loss_weight: weight of the attention-reconstruction loss in ``aux_loss``.
    """

    model_type = "memoria_compressive_transformer"

    mem_len: int = 512
    cmem_len: int = 512
    compression_rate: int = 4
    reconstruction_loss_weight: float = 1.0

    def validate_compression(self) -> None:
        """Rejects a compressed memory the model cannot be built with."""
        check_minimums(self, {"cmem_len": 0, "compression_rate": 1, "reconstruction_loss_weight": 0})
        if self.mem_len < self.compression_rate:
            raise ValueError(f"mem_len ({self.mem_len}) must be at least compression_rate ({self.compression_rate})")
