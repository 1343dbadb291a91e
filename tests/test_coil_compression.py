"""SVD coil compression to a fixed number of virtual coils (any coil count) on the real brain scan."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrizoo.errors import InputError
from mrizoo.physics.coil_compression import compress_coils, expand_coils, virtual_coil_matrix
from mrizoo.physics.coils import rss
from mrizoo.physics.fft import ifft2c

pytestmark = pytest.mark.usefixtures("one_thread")


def _mask(h: int = 230, w: int = 180) -> torch.Tensor:
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[:, ::4] = True
    mask[:, w // 2 - 7 : w // 2 + 7] = True
    return mask


def test_eight_coils_to_eight_is_a_unitary_rotation(brain_kspace: np.ndarray) -> None:
    k = torch.from_numpy(brain_kspace)
    out, mat = compress_coils(k, 8, mask=_mask(), return_matrix=True)
    torch.testing.assert_close(mat @ mat.conj().T, torch.eye(8, dtype=mat.dtype), rtol=0, atol=1e-5)
    torch.testing.assert_close(rss(ifft2c(out)), rss(ifft2c(k)), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(expand_coils(out, mat), k, rtol=1e-4, atol=1e-3)


def test_matrix_comes_from_the_measured_samples_only(brain_kspace: np.ndarray) -> None:
    """Full k-space with a mask and the zero-filled measurement give the same virtual coils."""
    k = torch.from_numpy(brain_kspace)
    mask = _mask()
    from_full = virtual_coil_matrix(k * mask, 8)
    _, from_mask = compress_coils(k, 8, mask=mask, return_matrix=True)
    torch.testing.assert_close(from_mask, from_full)
    # the kept energy of the V leading virtual coils is the sum of the V largest eigenvalues of
    # the coil covariance of the measured samples (closed form, numpy)
    data = (k * mask).reshape(8, -1).numpy().astype(np.complex128)
    eig = np.sort(np.linalg.eigvalsh(data @ data.conj().T))[::-1]
    four = compress_coils(k * mask, 4)
    np.testing.assert_allclose(float((four.abs().double() ** 2).sum()), eig[:4].sum(), rtol=1e-4)


def test_more_coils_are_compressed_with_the_most_energy(brain_kspace: np.ndarray) -> None:
    """12 physical coils (the 8 real ones plus 4 mixtures with their own noise) -> 8 virtual."""
    k = torch.from_numpy(brain_kspace)
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(4, 8, dtype=torch.complex64, generator=g) / 8**0.5
    extra = torch.einsum("dc,chw->dhw", mix, k)
    extra = extra + 0.01 * extra.abs().mean() * torch.randn(extra.shape, dtype=torch.complex64, generator=g)
    twelve = torch.cat([k, extra])
    out, mat = compress_coils(twelve, 8, return_matrix=True)
    assert out.shape == (8, 230, 180) and mat.shape == (8, 12)
    kept = float((out.abs() ** 2).sum() / (twelve.abs() ** 2).sum())
    assert kept > 0.999  # rank 8 plus a little noise
    back = expand_coils(out, mat)  # a projection: compressing it again changes nothing
    torch.testing.assert_close(compress_coils(back, 8), out, rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("coils", [1, 2])
def test_fewer_coils_are_padded_and_recovered_exactly(brain_kspace: np.ndarray, coils: int) -> None:
    k = torch.from_numpy(brain_kspace)[:coils] * _mask()
    out, mat = compress_coils(k, 8, return_matrix=True)
    assert out.shape == (8, 230, 180)
    assert torch.count_nonzero(out[coils:]) == 0 and torch.count_nonzero(mat[coils:]) == 0
    torch.testing.assert_close(rss(ifft2c(out)), rss(ifft2c(k)), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(expand_coils(out, mat), k, rtol=1e-4, atol=1e-3)


def test_virtual_coils_do_not_depend_on_the_physical_basis(brain_kspace: np.ndarray) -> None:
    """Fixed phases: any unitary mixing of the coils gives the same virtual coils."""
    k = torch.from_numpy(brain_kspace) * _mask()
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.complex64, generator=torch.Generator().manual_seed(1)))
    mixed = torch.einsum("dc,chw->dhw", q, k)
    a, b = compress_coils(k, 8), compress_coils(mixed, 8)
    scale = float(a.abs().max())
    torch.testing.assert_close(b / scale, a / scale, rtol=0, atol=2e-4)


def test_batched_items_get_their_own_matrix(brain_kspace: np.ndarray) -> None:
    k = torch.from_numpy(brain_kspace)
    batch = torch.stack([k, k.flip(0)])
    out, mat = compress_coils(batch, 5, return_matrix=True)
    assert out.shape == (2, 5, 230, 180) and mat.shape == (2, 5, 8)
    torch.testing.assert_close(out[0], out[1], rtol=1e-3, atol=1e-2)  # same data, other coil order
    assert not torch.allclose(mat[0], mat[1])


def test_bad_input_is_refused() -> None:
    with pytest.raises(InputError, match="complex"):
        compress_coils(torch.zeros(4, 8, 8), 8)
    with pytest.raises(InputError, match="num_virtual"):
        compress_coils(torch.zeros(4, 8, 8, dtype=torch.complex64), 0)
