"""MRI physics in torch: Fourier transforms, coils, sensitivity maps, forward models, solvers."""

from mrizoo.physics.cg import CGInfo, conjugate_gradient
from mrizoo.physics.coils import coil_compress, compression_matrix, rss, sense_combine, sense_expand
from mrizoo.physics.espirit import EspiritConfig, espirit_maps
from mrizoo.physics.fft import fft2c, fftshift2, ifft2c, ifftshift2, to_complex, to_real
from mrizoo.physics.operators import MultiCoilOperator, adjoint_op, forward_op

__all__ = [
    "CGInfo", "conjugate_gradient", "EspiritConfig", "espirit_maps",
    "coil_compress", "compression_matrix", "rss", "sense_combine", "sense_expand",
    "fft2c", "fftshift2", "ifft2c", "ifftshift2", "to_complex", "to_real",
    "MultiCoilOperator", "adjoint_op", "forward_op",
]

