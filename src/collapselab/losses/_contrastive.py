"""The settings every contrastive loss module holds, checked once."""

from __future__ import annotations

from torch import nn

from collapselab.losses._validate import check_block_size, check_positive


class ContrastiveModule(nn.Module):
    """Base of :class:`~collapselab.losses.info_nce.InfoNCELoss` and
    :class:`~collapselab.losses.nt_xent.NTXentLoss`: the temperature, whether rows are
    L2-normalised, the block size of the memory-bounded form (None: one block) and whether
    negatives are gathered from every rank. ``temperature=None``: the loss's own default
    (its module's ``TEMPERATURE``, the class attribute ``default_temperature``)."""

    default_temperature: float

    def __init__(
        self,
        temperature: float | None = None,
        normalize: bool = True,
        block_size: int | None = None,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        temperature = self.default_temperature if temperature is None else temperature
        check_positive("temperature", temperature)
        check_block_size(block_size)
        self.temperature = temperature
        self.normalize = normalize
        self.block_size = block_size
        self.gather_distributed = gather_distributed
