"""Classical (non-learned) reconstructions, the baselines every model is compared with.

One definition each, used everywhere a baseline is printed (``mrizoo demo``, ``mrizoo evaluate``,
the ``reconstruct --figure`` captions, the model cards), through the zoo entries that wrap them:
``zerofilled`` = :func:`zero_filled` without maps (the RSS of the zero-filled coil images, fastMRI's
baseline), ``cgsense`` = :func:`cg_sense` and ``l1wavelet`` = :func:`l1_wavelet` with their default
:class:`CGSenseConfig` / :class:`L1WaveletConfig` and ESPIRiT maps estimated from the undersampled
k-space.
"""

from mrizoo.classical.cg_sense import CGSenseConfig, cg_sense
from mrizoo.classical.l1_wavelet import L1WaveletConfig, l1_wavelet
from mrizoo.classical.zero_filled import zero_filled

__all__ = ["CGSenseConfig", "cg_sense", "L1WaveletConfig", "l1_wavelet", "zero_filled"]
