"""The infinity-former: its continuous signal (basis fit, continuous softmax, KL, sticky sampling) and the model
model's own behaviour (the long-term memory reached, bounded and regularised, gradients, sticky memories). The
contract every model keeps is tested in test_model_contract.py."""

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from experiment.models.gpt2_weights import copy_gpt2_weights
from experiment.models.infinity_former import InfinityFormerConfig, InfinityFormerLMHeadModel
from experiment.models.infinity_former.continuous_signal import (
    GaussianBasis,
    attention_histogram,
    even_positions,
    gaussian_density,
    kl_to_reference,
    sample_positions,
)
from experiment.models.infinity_former.memory import BlockReadout, updated_long_term
from experiment.models.infinity_former.modeling_infinity_former import ContinuousAttention

LONG_TERM = {"ltm_num_basis": 16, "ltm_basis_widths": [0.08, 0.16]}


@pytest.fixture
def tiny_config(tiny_gpt2_fields):
    """Makes a tiny infinity-former configuration (the tiny GPT-2's fields, 16 basis functions)."""
    return lambda **overrides: InfinityFormerConfig(**{**tiny_gpt2_fields, **LONG_TERM, **overrides})


@pytest.fixture
def tiny_model(tiny_config, seeded_model):
    """Makes a tiny infinity-former in eval mode with seeded initial weights."""
    return lambda **overrides: seeded_model(InfinityFormerLMHeadModel, tiny_config(**overrides))


def smooth_signal(positions: torch.Tensor) -> torch.Tensor:
    """A sum of sines at ``positions`` [P], shaped [1, P, 1]."""
    two_pi_t = 2 * math.pi * positions
    return (torch.sin(3 * two_pi_t) + 0.5 * torch.sin(7 * two_pi_t + 1) + 0.3 * torch.cos(11 * two_pi_t))[None, :, None]


# the continuous signal


def test_ridge_fit_reconstructs_a_smooth_signal_better_with_more_basis_functions():
    positions = even_positions(0.0, 1.0, 512, "cpu")
    signal = smooth_signal(positions)
    errors = []
    for num_basis in (32, 64, 128, 256):
        basis = GaussianBasis(num_basis, [0.005, 0.01])
        fitted = basis.reconstruct(basis.fit(signal, positions, penalty=0.5), positions)
        errors.append(((fitted - signal).norm() / signal.norm()).item())
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 0.01


def test_ridge_fit_is_the_closed_form_minimiser():
    basis = GaussianBasis(8, [0.1, 0.2])
    positions = torch.rand(20, dtype=torch.float64)
    values = torch.randn(1, 20, 3, dtype=torch.float64)
    coefficients = basis.fit(values, positions, penalty=0.5).double()
    design = basis.evaluate(positions)  # [P, N]
    # the gradient of ||design B - X||^2 + lambda ||B||^2 vanishes at the minimiser
    gradient = design.T @ (design @ coefficients[0] - values[0]) + 0.5 * coefficients[0]
    assert gradient.abs().max() < 1e-4


def test_basis_centres_lie_on_a_grid_per_width():
    basis = GaussianBasis(8, [0.005, 0.01])
    torch.testing.assert_close(basis.centres, torch.linspace(0, 1, 4, dtype=torch.float64).repeat(2))
    torch.testing.assert_close(basis.widths, torch.tensor([0.005] * 4 + [0.01] * 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="num_basis"):
        GaussianBasis(7, [0.005, 0.01])


@pytest.mark.parametrize("mu,variance", [(0.3, 0.01), (0.5, 0.0004), (0.9, 0.05), (0.05, 0.2)])
def test_continuous_softmax_matches_numeric_integration(mu, variance):
    basis = GaussianBasis(16, [0.05, 0.1])
    grid = torch.linspace(-3.0, 4.0, 200001, dtype=torch.float64)  # the real line, for these widths
    density = gaussian_density(grid, torch.tensor(mu, dtype=torch.float64), torch.tensor(variance, dtype=torch.float64))
    numeric = torch.trapezoid(density[:, None] * basis.evaluate(grid), grid, dim=0)  # [N]
    closed_form = basis.expectation(torch.tensor(mu, dtype=torch.float64), torch.tensor(variance, dtype=torch.float64))
    torch.testing.assert_close(closed_form, numeric, rtol=1e-6, atol=1e-8)

    # reading the signal: V^T E_p[psi] is the expectation of x(t) = B^T psi(t) under p
    coefficients = torch.randn(1, 16, 3, dtype=torch.float64)
    signal = basis.reconstruct(coefficients, grid)[0]  # [P, 3]
    read = torch.trapezoid(density[:, None] * signal, grid, dim=0)
    torch.testing.assert_close(closed_form @ coefficients[0], read, rtol=1e-6, atol=1e-8)


def test_long_term_update_contracts_the_old_signal_into_tau_and_appends_the_new_one():
    config = InfinityFormerConfig(ltm_num_basis=256, ltm_sticky_memories=False)
    basis = GaussianBasis(256, config.ltm_basis_widths)
    grid = even_positions(0.0, 1.0, 128)
    first = torch.stack([torch.sin(4 * math.pi * grid), torch.cos(6 * math.pi * grid)], dim=-1)[None]  # [1, 128, 2]
    second = torch.stack([torch.cos(2 * math.pi * grid), torch.sin(8 * math.pi * grid + 1)], dim=-1)[None]
    rows = torch.ones(1, dtype=torch.bool)

    fitted = updated_long_term(basis, config, None, ~rows, first, rows, BlockReadout(normed=first))
    assert (basis.reconstruct(fitted, grid) - first).norm() < 1e-3 * first.norm()
    fitted = updated_long_term(basis, config, fitted, rows, second, rows, BlockReadout(normed=second))
    old_half, new_half = basis.reconstruct(fitted, grid * 0.5), basis.reconstruct(fitted, 0.5 + grid * 0.5)
    assert (old_half - first).norm() < 0.05 * first.norm()
    assert (new_half - second).norm() < 0.05 * second.norm()

    # a row whose incoming states were reset away keeps its coefficients
    kept = updated_long_term(basis, config, fitted, rows, first, ~rows, BlockReadout(normed=first))
    assert torch.equal(kept, fitted)


def test_kl_to_reference_matches_the_gaussian_formula():
    # KL(N(m, 0.01) || N(m, 0.05^2)) = log(0.05 / 0.1) + 0.01 / (2 * 0.0025) - 1/2
    expected = math.log(0.5) + 2.0 - 0.5
    torch.testing.assert_close(kl_to_reference(torch.tensor(0.01), 0.05), torch.tensor(expected))
    variance = torch.tensor([1e-4, 0.0025, 0.3])
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(0.4, variance.sqrt()), torch.distributions.Normal(0.4, 0.05)
    )
    torch.testing.assert_close(kl_to_reference(variance, 0.05), reference)
    assert kl_to_reference(torch.tensor(0.0025), 0.05).abs() < 1e-6


def test_attention_histogram_puts_the_mass_where_the_gaussians_are():
    mu = torch.tensor([[0.33, 0.36], [0.8, 0.8]])  # [B = 2, Q = 2]; 0.8 is a bin edge
    variance = torch.full_like(mu, 1e-6)
    histogram = attention_histogram(mu, variance, num_bins=10)
    torch.testing.assert_close(histogram.sum(dim=-1), torch.ones(2))
    assert histogram[0, 3] > 0.99 and histogram[1, 8] > 0.49 and histogram[1, 7] > 0.49


def test_sticky_sampling_follows_the_histogram_and_is_seeded():
    histogram = torch.zeros(2, 8)
    histogram[0, 2] = 1.0
    histogram[1, 5:7] = 0.5
    torch.manual_seed(3)
    positions = sample_positions(histogram, 100)
    assert positions.shape == (2, 100)
    assert ((positions[0] >= 2 / 8) & (positions[0] <= 3 / 8)).all()
    assert ((positions[1] >= 5 / 8) & (positions[1] <= 7 / 8)).all()
    assert (positions[:, 1:] >= positions[:, :-1]).all()
    torch.manual_seed(3)
    torch.testing.assert_close(sample_positions(histogram, 100), positions, rtol=0, atol=0)
    torch.manual_seed(4)
    assert not torch.equal(sample_positions(histogram, 100), positions)


def test_sticky_sampling_of_a_row_does_not_depend_on_other_rows():
    histogram = torch.softmax(torch.randn(3, 16), dim=-1)
    changed = histogram.clone()
    changed[1] = torch.softmax(torch.randn(16), dim=-1)
    torch.manual_seed(0)
    expected = sample_positions(histogram, 32)
    torch.manual_seed(0)
    got = sample_positions(changed, 32)
    assert torch.equal(got[[0, 2]], expected[[0, 2]]) and not torch.equal(got[1], expected[1])


def test_continuous_attention_matches_the_paper_formulas_computed_directly(tiny_config):
    torch.manual_seed(0)
    config = tiny_config()
    attention = ContinuousAttention(config, GaussianBasis(16, [0.08, 0.16])).eval()
    normed, coefficients = torch.randn(2, 5, 32), torch.randn(2, 16, 32)
    has_memory = torch.tensor([True, False])
    output, mu, variance = attention(normed, coefficients, has_memory)

    heads, head_dim = 2, 16
    query = attention.q_proj(normed).view(2, 5, heads, head_dim).transpose(1, 2)  # [B, H, L, d]
    key, value = attention.kv_proj(coefficients).split(32, dim=-1)
    key, value = (x.view(2, 16, heads, head_dim).transpose(1, 2) for x in (key, value))  # [B, H, N, d]
    scores = query @ key.transpose(-1, -2) / math.sqrt(head_dim)  # [B, H, L, N]: s = K q / sqrt(d)
    expected_mu = torch.sigmoid(scores @ attention.mu_proj.weight[0])
    expected_variance = torch.nn.functional.softplus(scores @ attention.variance_proj.weight[0])
    torch.testing.assert_close(mu, expected_mu)
    torch.testing.assert_close(variance, expected_variance)

    centres, widths = attention.basis.centres.float(), attention.basis.widths.float()
    total_variance = expected_variance[..., None] + widths**2
    basis_weights = torch.exp(-((expected_mu[..., None] - centres) ** 2) / (2 * total_variance))
    basis_weights = basis_weights / torch.sqrt(2 * math.pi * total_variance)  # r_j = N(mu; c_j, sigma^2 + s_j^2)
    context = (basis_weights @ value).transpose(1, 2).reshape(2, 5, 32)  # z = V^T r, heads concatenated
    torch.testing.assert_close(output[0], attention.c_proj(context)[0])
    assert torch.equal(output[1], torch.zeros(5, 32))


# the model


@pytest.mark.parametrize("short_term_memory", [True, False])
def test_an_earlier_segment_changes_later_logits(short_term_memory, tiny_segments, seeded_logits, tiny_model):
    # with a one-segment short-term memory, segment 0 reaches segment 3 only through the long-term memory
    model = tiny_model(short_term_memory=short_term_memory)
    inputs = tiny_segments(4)
    expected = seeded_logits(model, inputs)[3]
    model.reset_memory()
    changed = [tiny_segments(1, seed=9)[0]] + inputs[1:]
    assert not torch.allclose(seeded_logits(model, changed)[3], expected)


def test_long_term_memory_keeps_a_fixed_size_however_long_the_stream(tiny_segments, seeded_logits, tiny_model):
    model = tiny_model()
    seeded_logits(model, tiny_segments(6))
    memory = model.transformer.memory
    assert len(memory.coefficients) == 2
    assert all(layer.shape == (3, 16, 32) for layer in memory.coefficients)
    assert memory.has_long_term.all() and memory.short_term_valid.all()


def test_segments_may_differ_in_length(tiny_model):
    model = tiny_model()
    generator = torch.Generator().manual_seed(0)
    for length in (5, 8, 3, 8, 16):
        logits = model(input_ids=torch.randint(0, 9, (3, length), generator=generator)).logits
        assert logits.shape == (3, length, 9) and torch.isfinite(logits).all()
    assert model.transformer.memory.short_term[0].shape == (3, 16, 32)


def test_gradients_reach_the_long_term_attention_and_the_memory_embedding(tiny_segments, tiny_model):
    model = tiny_model().train()
    inputs = tiny_segments(3)
    for x in inputs[:2]:
        with torch.no_grad():
            model(input_ids=x)
    output = model(input_ids=inputs[2])
    (output.logits.logsumexp(dim=-1).mean() + output.aux_loss).backward()
    for block in model.transformer.h:
        for parameter in (
            block.ltm_attn.mu_proj.weight,
            block.ltm_attn.variance_proj.weight,
            block.ltm_attn.q_proj.weight,
            block.ltm_attn.kv_proj.weight,
            block.attn.memory_embedding,
        ):
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    assert all(layer.grad_fn is None and not layer.requires_grad for layer in model.transformer.memory.coefficients)


def test_aux_loss_is_the_weighted_kl_and_starts_at_zero(tiny_segments, tiny_model):
    inputs = tiny_segments(3)
    losses = {}
    for weight in (1e-6, 3e-6):
        model = tiny_model(ltm_kl_weight=weight)
        torch.manual_seed(0)
        losses[weight] = [model(input_ids=x).aux_loss for x in inputs]
    # no long-term memory yet in segments 0 (empty) and 1 (segment 0 still in the short-term memory)
    assert losses[1e-6][0] == 0 and losses[1e-6][1] == 0 and losses[1e-6][2] > 0
    torch.testing.assert_close(losses[3e-6][2], 3 * losses[1e-6][2])


def test_sticky_memories_change_what_the_long_term_memory_keeps(tiny_segments, seeded_logits, tiny_model):
    inputs = tiny_segments(5)
    coefficients = {}
    for sticky in (True, False):
        model = tiny_model(ltm_sticky_memories=sticky)
        seeded_logits(model, inputs)
        coefficients[sticky] = model.transformer.memory.coefficients[0]
    assert not torch.allclose(coefficients[True], coefficients[False])


def test_a_model_run_is_reproducible_under_a_seed_and_sticky_sampling_uses_it(tiny_segments, seeded_logits, tiny_model):
    inputs = tiny_segments(5)
    model = tiny_model()
    first = seeded_logits(model, inputs, seed=1)[4]
    model.reset_memory()
    torch.testing.assert_close(seeded_logits(model, inputs, seed=1)[4], first, rtol=0, atol=0)
    model.reset_memory()
    assert not torch.equal(seeded_logits(model, inputs, seed=2)[4], first)


def test_gpt2_weights_fill_everything_but_the_memory(tmp_path, tiny_model):
    GPT2LMHeadModel(
        GPT2Config(n_layer=2, n_embd=32, n_head=2, n_inner=64, n_positions=16, vocab_size=20)
    ).save_pretrained(tmp_path)
    model = tiny_model()
    copied = set(copy_gpt2_weights(model, tmp_path))
    not_copied = {name for name, _ in model.named_parameters()} - copied
    assert not_copied and all(".ltm_attn." in name or name.endswith("memory_embedding") for name in not_copied)


# the configurations
