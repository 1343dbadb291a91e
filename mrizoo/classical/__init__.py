"""Classical (non-learned) reconstructions, the baselines every model is compared with."""

from mrizoo.classical.cg_sense import CGSenseConfig, cg_sense
from mrizoo.classical.l1_wavelet import L1WaveletConfig, l1_wavelet
from mrizoo.classical.zero_filled import zero_filled

__all__ = ["CGSenseConfig", "cg_sense", "L1WaveletConfig", "l1_wavelet", "zero_filled"]
