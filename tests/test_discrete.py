"""The discrete process family (plume.discrete), each part checked against an answer written here independently:
closed-form schedules and finite differences, Monte-Carlo marginals, Bayes' rule with explicit K x K transition
matrices, and the entropy of known factorised data, which a model that knows the data must reach."""
from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import chisquare

from plume.discrete import (MaskedProcess, UniformProcess, ancestral, bits_per_character, bits_per_token,
                            discrete_process, masked_nelbo, schedule, tempered, training_times, uniform_grid,
                            uniform_nelbo)
from plume.errors import PlumeError
from plume.samplers import SeedNoise

EPS = 1e-3
P = torch.tensor([0.5, 0.25, 0.15, 0.1], dtype=torch.float64)  # the data: tokens i.i.d. per position
WRONG = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float64)  # a model that does not know the data
K = len(P)


def entropy(p: torch.Tensor) -> float:
    return float(-(p * p.log()).sum())


def cross_entropy(p: torch.Tensor, q: torch.Tensor) -> float:
    return float(-(p * q.log()).sum())


def data(n: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.multinomial(P.float(), n * length, replacement=True,
                             generator=torch.Generator().manual_seed(seed)).reshape(n, length)  # (n, L)


def masked_model(p: torch.Tensor):
    """x_theta = p at every masked position, whatever z_t and t: the true denoiser of i.i.d. data."""
    def model(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = torch.cat([p.log(), torch.tensor([3.0], dtype=p.dtype)]).float()  # any mask logit: SUBS drops it
        return logits.expand(*z.shape, K + 1).clone()  # (B, L, K + 1)
    return model


def uniform_model(p: torch.Tensor, eps: float = EPS):
    """The exact posterior p(x | z_t) proportional to p(x) q(z_t | x), alpha_t = 1 - (1 - eps) t (log-linear)."""
    def model(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha = (1 - (1 - eps) * t.double()).reshape(-1, 1, 1)  # (B, 1, 1)
        likelihood = alpha * torch.nn.functional.one_hot(z, K).double() + (1 - alpha) / K  # (B, L, K) q(z_t | x=j)
        return (p * likelihood).log().float()  # unnormalised: softmax normalises
    return model


def within(estimate: torch.Tensor, expected: float, sds: float = 4.0) -> bool:
    """The Monte-Carlo mean of `estimate` is within `sds` standard errors of `expected`."""
    se = float(estimate.double().std() / math.sqrt(len(estimate)))
    return abs(float(estimate.double().mean()) - expected) < sds * se


# --- schedules -----------------------------------------------------------------------------------------------------

TIMES = [0.0, 0.1, 0.3, 0.5, 0.77, 0.95, 1.0]


@pytest.mark.parametrize("eps", [1e-3, 0.05])
def test_schedules_match_their_closed_forms(eps):
    loglinear, cosine = schedule("loglinear", eps=eps), schedule("cosine", eps=eps)
    for t in TIMES:
        tt = torch.tensor(t, dtype=torch.float64)
        assert float(loglinear.alpha(tt)) == pytest.approx(1 - (1 - eps) * t, abs=1e-12)
        assert float(loglinear.sigma(tt)) == pytest.approx(-math.log(1 - (1 - eps) * t), abs=1e-12)  # MDLM's sigma
        assert float(cosine.alpha(tt)) == pytest.approx(eps + (1 - eps) * math.cos(math.pi * t / 2), abs=1e-12)
    for s in (loglinear, cosine):
        assert float(s.alpha(torch.tensor(0.0))) == pytest.approx(1.0)
        assert float(s.alpha(torch.tensor(1.0))) == pytest.approx(eps, abs=1e-7)


@pytest.mark.parametrize("name", ["loglinear", "cosine"])
def test_schedule_derivatives_match_finite_differences(name):
    s, h = schedule(name, eps=0.01), 1e-6
    t = torch.tensor([0.05, 0.2, 0.5, 0.8, 0.97], dtype=torch.float64)
    numeric = (s.alpha(t + h) - s.alpha(t - h)) / (2 * h)
    assert torch.allclose(s.d_alpha(t), numeric, atol=1e-8, rtol=0)
    assert bool((s.d_alpha(t) < 0).all())


def test_schedules_and_processes_are_built_by_name_with_errors_that_list_the_valid_names():
    assert type(schedule("cosine")).__name__ == "Cosine" and schedule("cosine").eps == EPS
    with pytest.raises(PlumeError, match="valid discrete schedules: cosine, loglinear"):
        schedule("linear")
    process = discrete_process("uniform", vocab_size=7, schedule="cosine", eps=0.01)
    assert isinstance(process, UniformProcess) and process.options() == {"vocab_size": 7, "schedule": "cosine",
                                                                          "eps": 0.01}
    assert discrete_process("masked", **discrete_process("masked", vocab_size=5).options()).states == 6
    with pytest.raises(PlumeError, match="valid discrete process types: masked, uniform"):
        discrete_process("absorbing", vocab_size=5)
    with pytest.raises(PlumeError, match="eps must be in"):
        schedule("loglinear", eps=1.0)


# --- forward processes ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_masked_forward_marginals_match_alpha_by_monte_carlo(t):
    process, x = MaskedProcess(K), data(500, 16)
    z = process.q_sample(x, torch.tensor(t), torch.Generator().manual_seed(1))
    masked = (z == K).double().flatten()  # (n,)
    assert within(masked, 1 - (1 - (1 - EPS) * t))  # P(masked) = 1 - alpha_t, log-linear alpha
    assert torch.equal(z[z != K], x[z != K])  # what is not masked is the clean token


@pytest.mark.parametrize("t", [0.2, 0.7])
def test_uniform_forward_marginals_match_alpha_by_monte_carlo(t):
    process, x = UniformProcess(K), data(500, 16)
    z = process.q_sample(x, torch.tensor([t] * 500), torch.Generator().manual_seed(2))
    alpha = 1 - (1 - EPS) * t
    assert within((z == x).double().flatten(), alpha + (1 - alpha) / K)
    for shift in range(1, K):  # each other token with probability (1 - alpha) / K
        assert within((z == (x + shift) % K).double().flatten(), (1 - alpha) / K)


def test_training_times_are_uniform_with_one_per_stratum_when_antithetic():
    t = training_times(64, torch.Generator().manual_seed(3), antithetic=True, dtype=torch.float64)
    assert bool(((t >= torch.arange(64) / 64) & (t < (torch.arange(64) + 1) / 64)).all())
    t = training_times(20000, torch.Generator().manual_seed(3), antithetic=False, dtype=torch.float64)
    assert within(t, 0.5) and within(t**2, 1 / 3)


# --- posteriors, against Bayes' rule with explicit transition matrices ---------------------------------------------

def bayes_posterior(Q_s: torch.Tensor, Q_ts: torch.Tensor, x: int, z_t: int) -> torch.Tensor:
    """q(z_s | z_t, x) = q(z_s | x) q(z_t | z_s) / normaliser, from row-stochastic matrices Q[from, to]."""
    joint = Q_s[x] * Q_ts[:, z_t]  # (states,)
    return joint / joint.sum()


def uniform_matrix(alpha: float, k: int) -> torch.Tensor:
    return alpha * torch.eye(k, dtype=torch.float64) + (1 - alpha) / k * torch.ones(k, k, dtype=torch.float64)


def absorbing_matrix(alpha: float, k: int) -> torch.Tensor:
    """k tokens and the mask k: each token goes to the mask with probability 1 - alpha; the mask stays."""
    Q = alpha * torch.eye(k + 1, dtype=torch.float64)
    Q[:, k] += 1 - alpha
    Q[k, k] = 1.0
    return Q


STEPS = [(0.0, 0.3), (0.2, 0.5), (0.6, 0.61), (0.5, 1.0)]


@pytest.mark.parametrize("s, t", STEPS)
def test_uniform_posterior_and_reverse_step_match_bayes_with_transition_matrices(s, t):
    process = UniformProcess(K, schedule="cosine", eps=0.02)
    a_s, a_t = (float(process.alpha(torch.tensor(v, dtype=torch.float64))) for v in (s, t))
    Q_s, Q_ts = uniform_matrix(a_s, K), uniform_matrix(a_t / a_s, K)
    assert torch.allclose(Q_s @ Q_ts, uniform_matrix(a_t, K))  # the matrices compose: q(z_t | x) = x Q_s Q_ts
    pairs = [(x, z) for x in range(K) for z in range(K)]
    x = torch.tensor([[x for x, _ in pairs]])  # (1, K * K)
    z_t = torch.tensor([[z for _, z in pairs]])
    got = process.posterior(z_t, x, torch.tensor(s), torch.tensor(t))[0]  # (K * K, K)
    expected = torch.stack([bayes_posterior(Q_s, Q_ts, xi, zi) for xi, zi in pairs])
    assert torch.allclose(got, expected, atol=1e-12)
    x_theta = torch.softmax(torch.randn(1, K * K, K, generator=torch.Generator().manual_seed(4),
                                        dtype=torch.float64), -1)  # (1, K * K, K) any distribution over x
    mixed = torch.stack([sum(x_theta[0, i, xi] * bayes_posterior(Q_s, Q_ts, xi, zi) for xi in range(K))
                         for i, (_, zi) in enumerate(pairs)])
    assert torch.allclose(process.reverse(z_t, x_theta, torch.tensor(s), torch.tensor(t))[0], mixed, atol=1e-12)


@pytest.mark.parametrize("s, t", STEPS)
def test_masked_posterior_and_reverse_step_match_bayes_with_transition_matrices(s, t):
    process = MaskedProcess(K, schedule="loglinear", eps=0.05)
    a_s, a_t = (float(process.alpha(torch.tensor(v, dtype=torch.float64))) for v in (s, t))
    Q_s, Q_ts = absorbing_matrix(a_s, K), absorbing_matrix(a_t / a_s, K)
    assert torch.allclose(Q_s @ Q_ts, absorbing_matrix(a_t, K))
    pairs = [(x, z) for x in range(K) for z in (x, K)]  # z_t is x or the mask; nothing else has probability > 0
    x = torch.tensor([[x for x, _ in pairs]])
    z_t = torch.tensor([[z for _, z in pairs]])
    got = process.posterior(z_t, x, torch.tensor(s), torch.tensor(t))[0]  # (2K, K + 1)
    expected = torch.stack([bayes_posterior(Q_s, Q_ts, xi, zi) for xi, zi in pairs])
    assert torch.allclose(got, expected, atol=1e-12)
    x_theta = torch.softmax(torch.randn(1, 2 * K, K, generator=torch.Generator().manual_seed(5),
                                        dtype=torch.float64), -1)
    x_theta = torch.cat([x_theta, torch.zeros(1, 2 * K, 1, dtype=torch.float64)], -1)  # (1, 2K, K + 1) no mass on m
    # the reverse step is the posterior mixed over x_theta where z_t is masked; an unmasked z_t stays
    mixed = torch.stack([sum(x_theta[0, i, xi] * bayes_posterior(Q_s, Q_ts, xi, zi) for xi in range(K)) if zi == K
                         else bayes_posterior(Q_s, Q_ts, zi, zi) for i, (_, zi) in enumerate(pairs)])
    assert torch.allclose(process.reverse(z_t, x_theta, torch.tensor(s), torch.tensor(t))[0], mixed, atol=1e-12)


def test_subs_puts_zero_mass_on_the_mask_and_carries_over_unmasked_tokens():
    process = MaskedProcess(K)
    logits = torch.randn(3, 6, K + 1, generator=torch.Generator().manual_seed(6))
    z_t = torch.tensor([[K, 0, K, 3, 1, K], [K] * 6, [2, 2, 0, 1, 3, 0]])
    probs = process.subs(logits, z_t).exp()  # (3, 6, K + 1)
    assert bool((probs[..., K] == 0).all())
    masked = z_t == K
    assert torch.allclose(probs[masked][:, :K], torch.softmax(logits[masked][:, :K], -1))
    assert torch.equal(probs[~masked], torch.nn.functional.one_hot(z_t[~masked], K + 1).float())


# --- likelihood bounds ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["loglinear", "cosine"])
def test_masked_nelbo_of_the_true_model_is_the_entropy_and_of_a_wrong_model_the_cross_entropy(name):
    """For i.i.d. data and x_theta = p the bound is tight: L H(p) (times 1 - eps: alpha reaches eps, not 0)."""
    process, x, L = MaskedProcess(K, schedule=name), data(20000, 8, seed=7), 8
    true = masked_nelbo(process, masked_model(P), x, torch.Generator().manual_seed(8))  # (B,)
    wrong = masked_nelbo(process, masked_model(WRONG), x, torch.Generator().manual_seed(8))  # the same draws
    assert within(true, (1 - EPS) * L * entropy(P))
    assert within(wrong, (1 - EPS) * L * cross_entropy(P, WRONG))
    assert within(wrong - true, (1 - EPS) * L * (cross_entropy(P, WRONG) - entropy(P)))  # L KL(p || p'), sharper
    assert bits_per_token(true, L) == pytest.approx((1 - EPS) * entropy(P) / math.log(2), rel=0.03)


def test_uniform_nelbo_of_the_true_model_is_the_entropy_and_below_a_wrong_models():
    """With the exact posterior as x_theta the reverse chain is exact but for its start at t = 1 (uniform, vs
    q(z_1) = eps p + (1 - eps) / K), so the bound is L H(p) plus a gap of order eps; a wrong model pays more."""
    process, L = UniformProcess(K), 4
    x = data(4000, L, seed=9)
    true = uniform_nelbo(process, uniform_model(P), x, 10, torch.Generator().manual_seed(10))  # (B,)
    wrong = uniform_nelbo(process, uniform_model(WRONG), x, 10, torch.Generator().manual_seed(10))
    H = L * entropy(P)
    se = float(true.std()) / math.sqrt(len(true))
    assert float(true.mean()) > H - 3 * se and within(true, H)
    assert float((wrong - true).mean()) > 4 * float((wrong - true).std()) / math.sqrt(len(true))


def test_a_nelbo_in_nats_is_converted_to_bits_per_token_and_per_character():
    nelbo = torch.tensor([10.0, 30.0])
    assert bits_per_token(nelbo, 8) == pytest.approx(40 / (16 * math.log(2)))
    assert bits_per_token(nelbo, torch.tensor([4, 12])) == pytest.approx(40 / (16 * math.log(2)))
    assert bits_per_character(nelbo, torch.tensor([25, 15])) == pytest.approx(1 / math.log(2))
    with pytest.raises(PlumeError, match="positive character count"):
        bits_per_character(nelbo, 0)


# --- sampling ------------------------------------------------------------------------------------------------------

def test_temperature_and_nucleus_reshape_a_distribution():
    p = torch.tensor([[0.1, 0.5, 0.15, 0.25]])
    assert torch.allclose(tempered(p, temperature=0.5), p**2 / (p**2).sum())
    assert torch.allclose(tempered(p, top_p=0.7), torch.tensor([[0, 0.5 / 0.75, 0, 0.25 / 0.75]]))  # 0.5 + 0.25
    assert torch.allclose(tempered(p, top_p=0.75), torch.tensor([[0, 0.5 / 0.75, 0, 0.25 / 0.75]]))  # exactly reached
    assert torch.allclose(tempered(p, top_p=0.3), torch.tensor([[0.0, 1.0, 0.0, 0.0]]))  # the top token always stays
    with pytest.raises(PlumeError, match="top_p must be in"):
        tempered(p, top_p=0.0)


def counts(tokens: torch.Tensor) -> torch.Tensor:
    return torch.bincount(tokens.flatten(), minlength=K).double()


def matches(tokens: torch.Tensor, p: torch.Tensor) -> bool:
    """Pearson's chi-square test of token frequencies against p at the 0.1% level (the tokens are independent)."""
    c = counts(tokens)
    return bool(chisquare(c.numpy(), (p / p.sum() * c.sum()).numpy()).pvalue > 1e-3)


@pytest.mark.parametrize("steps, end, final", [(4, 0.0, "argmax"), (40, 0.0, "argmax"), (5, 0.5, "draw")])
def test_masked_sampler_with_the_true_model_draws_tokens_with_frequencies_p(steps, end, final):
    """A masked position's token is drawn from x_theta = p whenever it unmasks, several per step when steps < L."""
    B, L = 300, 16
    out = ancestral(masked_model(P), MaskedProcess(K), torch.zeros(B, L, dtype=torch.long),
                    uniform_grid(steps, end), SeedNoise(range(B)), final=final)
    assert bool((out.tokens < K).all()) and matches(out.tokens, P)


def test_masked_sampler_draws_from_the_tempered_distribution():
    B, L = 300, 16
    out = ancestral(masked_model(P), MaskedProcess(K), torch.zeros(B, L, dtype=torch.long), uniform_grid(8),
                    SeedNoise(range(B)), temperature=0.5)
    assert matches(out.tokens, P**2) and not matches(out.tokens, P)


def test_uniform_sampler_with_the_exact_posterior_draws_tokens_with_frequencies_p():
    B, L = 300, 16
    out = ancestral(uniform_model(P), UniformProcess(K), torch.zeros(B, L, dtype=torch.long), uniform_grid(20),
                    SeedNoise(range(B)))
    assert matches(out.tokens, P) and not matches(out.tokens, torch.ones(K))


@pytest.mark.parametrize("process", [MaskedProcess(K), UniformProcess(K)], ids=["masked", "uniform"])
def test_fixed_positions_are_seen_by_the_model_and_come_back_unchanged_and_the_others_are_drawn(process):
    B, L = 64, 12
    tokens = torch.full((B, L), 3)
    fixed = torch.zeros(B, L, dtype=torch.bool)
    fixed[:, :4] = True  # a prompt
    fixed[::2, 9] = True  # and an infilled gap
    inner, seen = masked_model(P) if process.name == "masked" else uniform_model(P), []

    def model(z, t):
        seen.append(z.clone())
        return inner(z, t)

    out = ancestral(model, process, tokens, uniform_grid(10), SeedNoise(range(B)), fixed=fixed).tokens
    assert torch.equal(out[fixed], tokens[fixed])
    assert len(seen) == 10 and all(torch.equal(z[fixed], tokens[fixed]) for z in seen)  # from the first call on
    assert bool((out < K).all()) and (out[~fixed] != 3).float().mean() > 0.6  # the rest drawn from p


def test_a_grid_that_ends_above_zero_is_finished_by_argmax_or_by_a_draw():
    """On 1 -> 0.9 most positions are still masked (alpha = 0.1): "argmax" gives them p's mode, "draw" draws p."""
    B, L = 100, 16
    args = (masked_model(P), MaskedProcess(K), torch.zeros(B, L, dtype=torch.long), uniform_grid(3, end=0.9))
    greedy = ancestral(*args, SeedNoise(range(B)), final="argmax").tokens
    drawn = ancestral(*args, SeedNoise(range(B)), final="draw").tokens
    assert bool((greedy < K).all()) and (greedy == 0).double().mean() > 0.9  # 0.9 + 0.1 * P[0] expected
    assert bool((drawn < K).all()) and matches(drawn, P)


def test_caching_skips_model_calls_while_nothing_changes_and_gives_the_same_samples():
    """A model that does not read t but reads every token: stale x_theta after a change would change the draws."""
    B, L, steps = 4, 6, 64
    reads_tokens = row_model(K + 1)
    model = lambda z, t: reads_tokens(z, torch.zeros_like(t))  # (B, L, K + 1) independent of t
    args = (model, MaskedProcess(K), torch.zeros(B, L, dtype=torch.long), uniform_grid(steps))
    cached = ancestral(*args, SeedNoise(range(B)), time_conditioned=False)
    uncached = ancestral(*args, SeedNoise(range(B)), time_conditioned=True)
    assert uncached.model_calls == steps
    assert 1 < cached.model_calls <= B * L + 1 < steps  # a call only after some token has changed
    assert torch.equal(cached.tokens, uncached.tokens)


def row_model(states: int):
    """A model whose logits for a sequence depend on all its tokens (their counts), row by row."""
    weights = torch.randn(states, states, generator=torch.Generator().manual_seed(11))

    def model(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        histogram = torch.nn.functional.one_hot(z, states).float().mean(1)  # (B, states)
        logits = histogram @ weights + t.reshape(-1, 1)  # (B, states)
        return logits.unsqueeze(1).expand(-1, z.shape[1], -1) + 0.1 * z.unsqueeze(-1)  # (B, L, states)
    return model


@pytest.mark.parametrize("process", [MaskedProcess(K), UniformProcess(K)], ids=["masked", "uniform"])
def test_sequence_k_is_the_same_drawn_alone_or_in_a_batch(process):
    seeds, L = [3, 17, 40, 41], 10
    tokens = torch.randint(K, (len(seeds), L), generator=torch.Generator().manual_seed(12))
    fixed = torch.rand(len(seeds), L, generator=torch.Generator().manual_seed(13)) < 0.3
    options = dict(times=uniform_grid(7, end=0.1), temperature=0.8, top_p=0.9, final="draw")
    batch = ancestral(row_model(process.states), process, tokens, noise=SeedNoise(seeds), fixed=fixed, **options)
    alone = ancestral(row_model(process.states), process, tokens[1:2], noise=SeedNoise(seeds[1:2]),
                      fixed=fixed[1:2], **options)
    assert torch.equal(batch.tokens[1], alone.tokens[0])
    assert not torch.equal(batch.tokens[2], batch.tokens[3])  # neighbouring seeds draw differently


def test_bad_inputs_are_refused_with_messages_that_name_them():
    process = MaskedProcess(K)
    tokens = torch.zeros(2, 5, dtype=torch.long)
    run = lambda **kw: ancestral(kw.pop("model", masked_model(P)), process, kw.pop("tokens", tokens),
                                 kw.pop("times", uniform_grid(3)), SeedNoise([0, 1]), **kw)
    with pytest.raises(PlumeError, match=r"logits of shape \(2, 5, 5\)"):
        run(model=lambda z, t: torch.zeros(2, 5, K))
    with pytest.raises(PlumeError, match=r"tokens\[1, 2\] = 4 is outside the vocabulary \[0, 4\)"):
        bad = tokens.clone()
        bad[1, 2] = K
        run(tokens=bad, fixed=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(PlumeError, match="must decrease strictly"):
        run(times=torch.tensor([1.0, 0.5, 0.5, 0.0]))
    with pytest.raises(PlumeError, match="temperature must be > 0"):
        run(temperature=0.0)
    with pytest.raises(PlumeError, match="valid final steps: argmax, draw"):
        run(final="greedy")
    with pytest.raises(PlumeError, match="one seed per sequence"):
        ancestral(masked_model(P), process, tokens, uniform_grid(3), SeedNoise([0]))
