"""TransformerLens's FactoredMatrix tests, run on the lens's circuits: `model.OV` (W_V W_O) and
`model.QK` (W_Q W_K^T), [layer, head, d_model, d_model] TransformerLens `FactoredMatrix`
objects, of the trained built-in "induction-2l" (weights of real size, so the tolerances
bite) and of a grouped-query preset.

Ports, from TransformerLens at commit 4cd36aaeb5dad931d085bd5d46a12b402fe15272
(/work/.mirror/TransformerLensOrg+TransformerLens/repo):
tests/unit/factored_matrix/test_constructor.py, test_get_item.py,
test_multiply_by_factored_matrix.py, test_multiply_by_matrix.py, test_multiply_by_scalar.py,
test_multiply_by_tensor_like.py, test_multiply_by_vector.py, test_properties.py.

Where a test builds `FactoredMatrix(randn(...), randn(...))`, it takes a head's circuit (or the
stack of them, for leading dimensions) and the model's own matrices (W_E, W_U, W_pos) as the
other operand; the circuits' factors are checked to be the stacked weights first.

Dropped: test_constructor's `test_factored_matrix_inner_mismatch` (skipped upstream: jaxtyping
checks pre-empt it); the random-shape edge cases of `ldim == mdim == rdim == 1` in
test_multiply_by_factored_matrix (a d_model x d_model circuit has no such shape; the remaining
shape relations - rdim < mdim, rdim > mdim, leading dimensions on either side - are kept).
Skipped on TransformerLens 3.0 (fixed in its FactoredMatrix later, nothing of the lens):
negative indices into the matrix dimensions, matmul with tensor-like objects (3.0 returns
None) and garbage collection of an instance whose svd() is cached.
"""

from __future__ import annotations

import gc
import warnings
import weakref

import pytest
import torch
from torch.testing import assert_close

import workbench
from tests.lens.conftest import transformerlens_version
from workbench.lens import HookedTransformer

TL4 = pytest.mark.skipif(
    transformerlens_version() < (4, 0),
    reason="TransformerLens 3.0's FactoredMatrix lacks this fix (4.x has it); not the lens",
)


@pytest.fixture(scope="module")
def lens():
    model = HookedTransformer.from_pretrained_no_processing("induction-2l")
    model.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def FM():
    from transformer_lens import FactoredMatrix

    return FactoredMatrix


def heads(lens):
    n_layers, n_heads = lens.cfg.n_layers, lens.cfg.n_heads
    return [(layer, h) for layer in range(n_layers) for h in range(n_heads)]


# ----- test_constructor.py --------------------------------------------------------------------
def test_factored_matrix(lens, FM) -> None:
    ov, qk = lens.OV, lens.QK
    assert isinstance(ov, FM) and isinstance(qk, FM)
    assert torch.equal(ov.A, lens.W_V) and torch.equal(ov.B, lens.W_O)
    assert torch.equal(qk.A, lens.W_Q) and torch.equal(qk.B, lens.W_K.transpose(-2, -1))
    d_model, d_head = lens.cfg.d_model, lens.cfg.d_head
    assert (ov.ldim, ov.mdim, ov.rdim) == (d_model, d_head, d_model)
    assert ov.has_leading_dims and ov.shape == (2, 4, d_model, d_model)
    one = ov[1, 2]
    assert not one.has_leading_dims and one.shape == (d_model, d_model)
    assert_close(one.AB, lens.W_V[1, 2] @ lens.W_O[1, 2])


def test_grouped_query_circuits_repeat_keys_and_values(FM) -> None:
    gqa = HookedTransformer.from_model(workbench.build("llama2-70b-tiny", seed=0))
    attn = gqa.block(0).attn
    group = gqa.cfg.n_heads // gqa.cfg.n_key_value_heads
    assert group > 1
    for h in range(gqa.cfg.n_heads):
        want_qk = attn.W_Q[h] @ attn.W_K[h // group].T
        assert_close(gqa.QK[0, h].AB, want_qk.detach())
        assert_close(gqa.OV[0, h].AB, (attn.W_V[h // group] @ attn.W_O[h]).detach())


def test_factored_matrix_b_leading_dims(lens, FM) -> None:
    a = lens.W_V[0, 0]  # [d_model, d_head], no leading dims
    f = FM(a, lens.W_O)  # B [layer, head, d_head, d_model]
    assert f.A.shape == (2, 4, 64, 16)
    assert torch.equal(f.B, lens.W_O)
    assert (f.ldim, f.mdim, f.rdim) == (64, 16, 64)
    assert f.has_leading_dims and f.shape == (2, 4, 64, 64)
    assert_close(f.AB, a @ lens.W_O)


def test_factored_matrix_a_b_leading_dims(lens, FM) -> None:
    f = FM(lens.W_V[0], lens.W_O)  # A [head, ...] broadcasts against B [layer, head, ...]
    assert f.A.shape == (2, 4, 64, 16)
    assert torch.equal(f.B, lens.W_O)
    assert f.has_leading_dims and f.shape == (2, 4, 64, 64)
    assert_close(f[1, 3].AB, lens.W_V[0, 3] @ lens.W_O[1, 3])


def test_factored_matrix_broadcast_mismatch(lens, FM) -> None:
    with pytest.raises(RuntimeError, match=r"[Mm]ismatch"):
        FM(lens.W_V[:, :3], lens.W_O)  # 3 heads against 4


# ----- test_get_item.py -----------------------------------------------------------------------
def test_getitem_int(lens) -> None:
    ov = lens.OV
    assert_close(ov[1].A, ov.A[1])
    assert_close(ov[1].B, ov.B[1])


def test_getitem_tuple(lens) -> None:
    ov = lens.OV
    assert_close(ov[(0, 1)].A, ov.A[0, 1])
    assert_close(ov[(0, 1)].B, ov.B[0, 1])


def test_getitem_slice(lens) -> None:
    ov = lens.OV
    assert_close(ov[:, 1].A, ov.A[:, 1])
    assert_close(ov[:, 1].B, ov.B[:, 1])


def test_getitem_error(lens) -> None:
    with pytest.raises(IndexError):
        _ = lens.OV[(0, lens.cfg.n_heads)]  # one head past the last


def test_getitem_multiple_slices(lens) -> None:
    qk = lens.QK
    assert_close(qk[:, 2:].A, qk.A[:, 2:])
    assert_close(qk[:, 2:].B, qk.B[:, 2:])


def test_index_dimension_get_line(lens) -> None:
    ov = lens.OV
    assert_close(ov[1, 2, 5].AB.squeeze(), ov.AB[1, 2, 5])


def test_index_dimension_get_element(lens) -> None:
    ov = lens.OV
    assert_close(ov[1, 2, 5, 7].AB.squeeze(), ov.AB[1, 2, 5, 7])


@TL4
def test_index_dimension_get_line_negative(lens) -> None:
    ov = lens.OV
    assert_close(ov[1, 2, -1].AB.squeeze(), ov.AB[1, 2, -1])


@TL4
def test_index_dimension_get_element_negative(lens) -> None:
    ov = lens.OV
    assert_close(ov[1, 2, 5, -1].AB.squeeze(), ov.AB[1, 2, 5, -1])


@TL4
def test_index_dimension_get_element_both_negative(lens) -> None:
    qk = lens.QK
    assert_close(qk[1, 2, -1, -1].AB.squeeze(), qk.AB[1, 2, -1, -1])


def test_index_dimension_too_big(lens) -> None:
    with pytest.raises(Exception):  # noqa: B017 - TransformerLens's test takes any error
        _ = lens.OV[1, 1, 1, 1, 1]


def test_getitem_sequences(lens) -> None:
    ov = lens.OV
    rows, cols = [0, 1], [0]
    result = ov[:, :, rows, cols]
    assert_close(result.A, ov.A[:, :, rows, :])
    assert_close(result.B, ov.B[:, :, :, cols])


def test_getitem_sequences_and_ints(lens) -> None:
    ov = lens.OV
    rows, col = [0, 1], 0
    result = ov[:, :, rows, col]
    assert_close(result.A, ov.A[:, :, rows, :])
    assert_close(result.B.squeeze(-1), ov.B[:, :, :, col])


def test_getitem_tensors(lens) -> None:
    qk = lens.QK
    rows, cols = torch.tensor([0, 1]), torch.tensor([0])
    result = qk[:, :, rows, cols]
    assert_close(result.A, qk.A[:, :, rows, :])
    assert_close(result.B, qk.B[:, :, :, cols])


# ----- test_multiply_by_factored_matrix.py ----------------------------------------------------
def check_product(FM, left, right):
    product = left @ right
    assert_close(product.AB, left.AB @ right.AB, rtol=1e-4, atol=1e-5)
    assert product.ldim == left.ldim
    assert product.mdim == min(left.mdim, left.rdim, right.ldim, right.mdim)
    assert product.rdim == right.rdim
    return product


@pytest.mark.parametrize(
    "case",
    ["OV then QK (rdim > mdim)", "embed-OV-unembed (rdim < mdim)", "QK then OV^T"],
)
def test_multiply_two_factored_matrices(lens, FM, case) -> None:
    ov, qk = lens.OV, lens.QK
    if case.startswith("OV then QK"):
        check_product(FM, ov[0, 1], qk[1, 2])
    elif case.startswith("embed"):
        left = FM(lens.W_E, lens.W_V[0, 0])  # [d_vocab, d_head] mdim 64 > rdim 16
        right = FM(lens.W_O[0, 0], lens.W_U)  # [d_head, d_vocab]
        check_product(FM, left, right)
    else:
        check_product(FM, qk[1, 3], ov.T[0, 2])


def test_multiply_when_A_has_leading_dim(lens) -> None:
    product = lens.OV[0] @ lens.QK[1, 2]  # every layer-0 head into one layer-1 head's queries
    assert product.A.shape[:1] == (4,) and product.B.shape[:1] == (4,)
    assert_close(product.AB, lens.OV.AB[0] @ lens.QK.AB[1, 2], rtol=1e-4, atol=1e-5)


def test_multiply_when_B_has_leading_dim(lens) -> None:
    product = lens.OV[0, 1] @ lens.QK[1]
    assert product.A.shape[:1] == (4,) and product.B.shape[:1] == (4,)
    assert_close(product.AB, lens.OV.AB[0, 1] @ lens.QK.AB[1], rtol=1e-4, atol=1e-5)


def test_multiply_when_both_have_leading_dim(lens) -> None:
    left = lens.OV[0].unsqueeze(0)  # [1, head, ...] broadcasts against [layer, head, ...]
    product = left @ lens.QK
    assert product.A.shape[:2] == (2, 4) and product.B.shape[:2] == (2, 4)
    assert_close(product.AB, lens.OV.AB[0][None] @ lens.QK.AB, rtol=1e-4, atol=1e-5)


def test_factored_dimension_mismatch(lens, FM) -> None:
    with pytest.raises(RuntimeError):  # leading dims: 3 heads against 4
        _ = lens.OV[:, :3] @ lens.QK
    with pytest.raises(RuntimeError):  # [layer, 3 heads] against [head]
        _ = lens.OV[:, :3] @ lens.QK[1]
    with pytest.raises(AssertionError):  # inner dimension: d_model against d_vocab
        _ = lens.OV[0, 0] @ FM(lens.W_U.T, lens.W_E)
    with pytest.raises(AssertionError):  # the same with leading dims on one side
        _ = lens.OV[0, 0] @ FM(lens.W_U.T, lens.W_E).unsqueeze(0)


# ----- test_multiply_by_matrix.py -------------------------------------------------------------
def check_left(fm, matrix):
    product = fm @ matrix
    assert_close(product.AB, fm.AB @ matrix, rtol=1e-4, atol=1e-5)
    assert product.ldim == fm.ldim
    assert product.mdim == min(fm.mdim, matrix.shape[-2])
    assert product.rdim == matrix.shape[-1]
    return product


def check_right(fm, matrix):
    product = matrix @ fm
    assert_close(product.AB, matrix @ fm.AB, rtol=1e-4, atol=1e-5)
    assert product.ldim == matrix.shape[-2]
    assert product.mdim == min(fm.mdim, matrix.shape[-1])
    assert product.rdim == fm.rdim
    return product


def test_left_multiply_by_matrix(lens) -> None:
    check_left(lens.OV[1, 0], lens.W_U)  # OV then unembed: [d_model, d_vocab]
    check_left(lens.OV[1, 0], lens.W_V[0, 0])  # rdim 16 < mdim... the circuit's own size
    check_right(lens.OV[0, 3], lens.W_E)  # embed then OV
    check_right(lens.QK[1, 1], lens.W_pos)  # positional queries


def test_left_multiply_when_factored_matrix_has_leading_dim(lens) -> None:
    product = check_left(lens.OV, lens.W_U)
    assert product.A.shape[:-2] == (2, 4) and product.B.shape[:-2] == (2, 4)
    product = check_right(lens.OV, lens.W_E)
    assert product.A.shape[:-2] == (2, 4)


def test_left_multiply_when_matrix_has_leading_dims(lens) -> None:
    stacked = lens.W_O[1]  # [head, d_head, d_model]: a matrix with a leading dim
    product = check_right(lens.OV[0, 0], stacked)  # [head, d_head, d_model]
    assert product.A.shape[:-2] == (4,) and product.B.shape[:-2] == (4,)
    product = check_left(lens.OV[0, 0], lens.W_V[1])  # [head, d_model, d_head]
    assert product.A.shape[:-2] == (4,)


def test_left_multiply_when_both_have_leading_dim(lens) -> None:
    product = check_left(lens.OV[0], lens.W_Q[1])  # per head: OV of L0Hh into L1Hh's queries
    assert product.A.shape[:-2] == (4,) and product.B.shape[:-2] == (4,)


def test_matrix_dimension_mismatch(lens) -> None:
    with pytest.raises(RuntimeError):
        _ = lens.OV[:, :3] @ lens.W_Q[0]  # leading dims 3 against 4
    with pytest.raises(AssertionError):
        _ = lens.OV[0, 0] @ lens.W_E  # d_model against d_vocab
    with pytest.raises(AssertionError):
        _ = lens.W_U @ lens.OV[0, 0]


# ----- test_multiply_by_scalar.py -------------------------------------------------------------
@pytest.mark.parametrize(
    ("scalar", "error_expected"),
    [
        (torch.tensor([0.37]), None),  # fixed values: TransformerLens draws them at import
        (0.73, None),
        (-87, None),
        (torch.rand(2, 2, generator=torch.Generator().manual_seed(0)), AssertionError),
        (torch.rand(2, generator=torch.Generator().manual_seed(1)), AssertionError),
    ],
    ids=["tensor", "float", "int", "tensor_2d", "tensor_1d"],
)
@pytest.mark.parametrize("leading_dim", [False, True])
@pytest.mark.parametrize("multiply_from_left", [False, True])
def test_multiply_by_scalar(lens, scalar, leading_dim, multiply_from_left, error_expected):
    fm = lens.OV if leading_dim else lens.OV[1, 2]
    if error_expected:
        with pytest.raises(error_expected):
            _ = fm * scalar if multiply_from_left else scalar * fm
        return
    if multiply_from_left:
        # scaling A before the product rounds differently from scaling the product: float32
        # relative error, not the default's absolute 1e-5 on entries of size ~100
        assert_close((fm * scalar).AB, fm.AB * scalar, rtol=1e-5, atol=1e-5)
        assert_close((fm * scalar).A, fm.A * scalar)
    else:
        assert_close((scalar * fm).AB, scalar * fm.AB, rtol=1e-5, atol=1e-5)
        assert_close((scalar * fm).A, scalar * fm.A)


# ----- test_multiply_by_tensor_like.py --------------------------------------------------------
class TensorLike:
    """The tensor protocol without subclassing torch.Tensor (TransformerLens's test helper)."""

    def __init__(self, tensor):
        self._tensor = tensor

    @property
    def ndim(self):
        return self._tensor.ndim

    @property
    def shape(self):
        return self._tensor.shape

    def size(self, dim=None):
        return self._tensor.size() if dim is None else self._tensor.size(dim)

    def unsqueeze(self, dim):
        return TensorLike(self._tensor.unsqueeze(dim))

    def squeeze(self, dim):
        return TensorLike(self._tensor.squeeze(dim))

    def broadcast_to(self, shape):
        return TensorLike(self._tensor.broadcast_to(shape))

    def __matmul__(self, other):
        from transformer_lens import FactoredMatrix

        if isinstance(other, FactoredMatrix):
            return NotImplemented
        if isinstance(other, TensorLike):
            return TensorLike(self._tensor @ other._tensor)
        return TensorLike(self._tensor @ other)

    def __rmatmul__(self, other):
        if isinstance(other, TensorLike):
            return TensorLike(other._tensor @ self._tensor)
        return TensorLike(other @ self._tensor)


@TL4
def test_left_multiply_factored_matrix_by_tensor_like_matrix(lens, FM) -> None:
    ov = lens.OV[1, 1]
    result = ov @ TensorLike(lens.W_U)
    assert isinstance(result, FM) and isinstance(result.AB, TensorLike)
    assert_close(result.AB._tensor, ov.AB @ lens.W_U, rtol=1e-4, atol=1e-5)


@TL4
def test_right_multiply_factored_matrix_by_tensor_like_matrix(lens, FM) -> None:
    ov = lens.OV[0, 2]
    result = TensorLike(lens.W_E) @ ov
    assert isinstance(result, FM) and isinstance(result.AB, TensorLike)
    assert_close(result.AB._tensor, lens.W_E @ ov.AB, rtol=1e-4, atol=1e-5)


@TL4
def test_left_multiply_factored_matrix_by_tensor_like_vector(lens) -> None:
    ov = lens.OV[1, 3]
    vector = lens.W_U[:, 5]
    result = ov @ TensorLike(vector)
    assert isinstance(result, TensorLike)
    assert_close(result._tensor, ov.AB @ vector, rtol=1e-4, atol=1e-5)


# ----- test_multiply_by_vector.py -------------------------------------------------------------
def test_left_matmul_by_vector_left(lens) -> None:
    fm, vector = lens.OV[1, 0], lens.W_U[:, 7]
    assert_close(fm @ vector, fm.AB @ vector, rtol=1e-4, atol=1e-5)


def test_left_matmul_by_vector_leading_dim(lens) -> None:
    fm, vector = lens.OV, lens.W_U[:, 7]
    assert_close(fm @ vector, fm.AB @ vector, rtol=1e-4, atol=1e-5)


def test_right_matmul_by_vector(lens) -> None:
    fm, vector = lens.OV[0, 1], lens.W_E[3]  # a token's embedding through a head
    assert_close(vector @ fm, vector @ fm.AB, rtol=1e-4, atol=1e-5)


def test_right_matmul_by_vector_leading_dim(lens) -> None:
    fm, vector = lens.QK, lens.W_pos[2]
    assert_close(vector @ fm, vector @ fm.AB, rtol=1e-4, atol=1e-5)


# ----- test_properties.py ---------------------------------------------------------------------
def circuits(lens):
    """2-D factored matrices of several shapes: head circuits and the full OV circuit."""
    from transformer_lens import FactoredMatrix

    out = [lens.OV[layer, h] for layer, h in heads(lens)[::3]] + [lens.QK[1, 0]]
    out.append(FactoredMatrix(lens.W_E, lens.W_V[0, 0]))  # [d_vocab, d_head]: not square
    return out


def test_AB_property(lens) -> None:
    for fm in circuits(lens):
        assert torch.allclose(fm.AB, fm.A @ fm.B, atol=1e-5)
    assert torch.allclose(lens.OV.AB, lens.W_V @ lens.W_O, atol=1e-5)


def test_BA_property(lens) -> None:
    for fm in circuits(lens):
        if fm.A.shape[-2] == fm.B.shape[-1]:
            assert torch.allclose(fm.BA, fm.B @ fm.A, atol=1e-5)
        else:
            with pytest.raises(AssertionError):
                _ = fm.BA


def test_transpose_property(lens) -> None:
    for fm in [*circuits(lens), lens.QK]:
        assert torch.allclose(fm.T.A, fm.B.transpose(-2, -1), atol=1e-5)
        assert torch.allclose(fm.T.B, fm.A.transpose(-2, -1), atol=1e-5)
    assert torch.allclose(lens.QK.T.AB, lens.W_K @ lens.W_Q.transpose(-2, -1), atol=1e-5)


def test_svd_property(lens) -> None:
    for fm in circuits(lens):
        U, S, V = fm.svd()
        assert torch.allclose(fm.AB, U @ torch.diag_embed(S) @ V.T, atol=1e-5)
        assert torch.allclose(U.T @ U, torch.eye(U.shape[-1]), atol=1e-5)
        assert torch.allclose(V.T @ V, torch.eye(V.shape[-1]), atol=1e-5)


def test_svd_property_leading_ones(lens) -> None:
    fm = lens.OV[1:, 2]  # [1, d_model, d_model]
    U, S, V = fm.svd()
    assert torch.allclose(fm.AB, U @ torch.diag_embed(S) @ V.mT, atol=1e-5)
    assert torch.allclose(U.mT @ U, torch.eye(U.shape[-1]), atol=1e-5)
    assert torch.allclose(V.mT @ V, torch.eye(V.shape[-1]), atol=1e-5)


@TL4  # 3.0 has only `Vh` (4 renamed it `V` and kept `Vh` as a deprecated alias)
def test_V_and_Vh_alias_match(lens) -> None:
    for fm in circuits(lens):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            vh_value = fm.Vh
        assert any(issubclass(w.category, DeprecationWarning) for w in caught)
        assert torch.equal(vh_value, fm.V)


def test_svd_caches_per_instance(lens) -> None:
    m = lens.OV[0, 0]
    first, second = m.svd(), m.svd()
    assert all(a is b for a, b in zip(first, second, strict=True))


@TL4
def test_svd_does_not_prevent_gc(lens) -> None:
    m = lens.QK[1, 1]
    _ = m.svd()
    ref = weakref.ref(m)
    del m
    gc.collect()
    assert ref() is None


def test_eigenvalues_property(lens) -> None:
    for fm in circuits(lens):
        if fm.ldim == fm.rdim:
            expected = torch.linalg.eig(fm.B @ fm.A).eigenvalues
            assert torch.allclose(fm.eigenvalues.abs(), expected.abs(), atol=1e-5)
            # the nonzero eigenvalues of the full d_model x d_model circuit are these
            full = torch.linalg.eigvals(fm.AB).abs().sort(descending=True).values
            mine = fm.eigenvalues.abs().sort(descending=True).values
            assert torch.allclose(full[: len(mine)], mine, atol=1e-4, rtol=1e-3)
        else:
            with pytest.raises(AssertionError):
                _ = fm.eigenvalues


def test_ndim_property(lens) -> None:
    for fm in circuits(lens):
        assert fm.ndim == 2
    assert lens.OV.ndim == 4 and lens.QK[0].ndim == 3


def test_pair_property(lens) -> None:
    ov = lens.OV
    assert torch.allclose(ov.pair[0], lens.W_V) and torch.allclose(ov.pair[1], lens.W_O)


def test_norm_property(lens) -> None:
    for fm in [*circuits(lens), lens.OV, lens.QK]:
        assert torch.allclose(fm.norm(), fm.AB.norm(dim=(-2, -1)), atol=1e-5, rtol=1e-5)


def test_get_corner(lens) -> None:
    for fm in circuits(lens):
        k = 3
        result = fm.get_corner(k)
        full = fm.AB
        expected = full[tuple(slice(k) for _ in range(full.ndim))]
        assert result.shape == expected.shape
        assert torch.allclose(result, expected, atol=1e-5)


def test_collapse_l(lens) -> None:
    for fm in circuits(lens):
        assert torch.allclose(fm.U @ fm.collapse_l(), fm.AB, atol=1e-4)


def test_collapse_r(lens) -> None:
    from transformer_lens.utilities import transpose

    for fm in circuits(lens):
        right = fm.V if hasattr(fm, "V") else fm.Vh  # 3.0 calls the right factor Vh
        assert torch.allclose(fm.collapse_r() @ transpose(right), fm.AB, atol=1e-4)


def test_eigenvalues_bfloat16_support(lens) -> None:
    for fm in circuits(lens)[:3]:
        half = fm.__class__(fm.A.to(torch.bfloat16), fm.B.to(torch.bfloat16))
        eigenvalues = half.eigenvalues
        assert eigenvalues.dtype == torch.complex64
        expected = torch.linalg.eig(half.BA.to(torch.float32)).eigenvalues
        got, want = eigenvalues.abs().sort().values, expected.abs().sort().values
        assert torch.allclose(got, want, atol=1e-2, rtol=1e-2)
