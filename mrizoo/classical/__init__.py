"""Classical (non-learned) reconstructions, the baselines every model is compared with."""

from mrizoo.classical.cg_sense import CGSenseConfig, cg_sense
from mrizoo.classical.zero_filled import zero_filled

__all__ = ["CGSenseConfig", "cg_sense", "zero_filled"]
