"""Checks of the energy-based reading and the charged-particles analogy.

Sections "Connection to Energy-Based Models" and "Physical Analogy". For L2-normalised
embeddings InfoNCE rewrites exactly as attraction of positives plus a log-sum of Gaussian
kernels of the distances, ``u^T v = 1 - |u - v|^2 / 2``; the uniformity loss of Wang & Isola
("Understanding Contrastive Representation Learning through Alignment and Uniformity on the
Hypersphere", ICML 2020, Eq. 5) is the same kernel averaged over all pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from collapselab.losses import info_nce, nt_xent, pairwise_attraction_loss
from collapselab.metrics.geometry import alignment, uniformity
from collapselab.theory import article
from collapselab.theory.claims_collapse import EXACT
from collapselab.theory.numerics import LossFn, collapsed, gradient
from collapselab.theory.registry import Finding

EnergyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_energy_softmax(
    energy: EnergyFn = article.energy, n: int = 6, d: int = 4, tau: float = 0.5, seed: int = 0
) -> Finding:
    """``P(k|i)`` is the Boltzmann distribution ``exp(-E_ik / tau) / Z_i`` of the energy
    ``E = -z_i^T z_k`` at temperature tau, and the loss is ``E_{i,i+} / tau + log Z_i``
    (the library's InfoNCE, raw dot products)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g, dtype=torch.float64)
    p = torch.randn(n, d, generator=g, dtype=torch.float64)
    e = energy(a, p)  # (N, N)
    boltzmann = torch.softmax(-e / tau, dim=1)
    err_p = float((boltzmann - article.softmax_probabilities(a, p, tau)).abs().max())
    free = (torch.diagonal(e) / tau + torch.logsumexp(-e / tau, dim=1)).mean()
    lib = info_nce(a, p, temperature=tau, normalize=False)
    err_l = abs(float(free - lib)) / abs(float(lib))
    # "minimizes energy for positives, increases energy for negatives": dL/dE signs
    e_var = e.detach().clone().requires_grad_(True)
    loss_of_e = (torch.diagonal(e_var) / tau + torch.logsumexp(-e_var / tau, dim=1)).mean()
    (d_e,) = torch.autograd.grad(loss_of_e, e_var)
    off = ~torch.eye(n, dtype=torch.bool)
    signs_ok = bool((torch.diagonal(d_e) > 0).all() and (d_e[off] < 0).all())
    numbers = {"max_abs_err_probabilities": err_p, "rel_err_loss_as_free_energy": err_l,
               "dL_dE_positive_min": float(torch.diagonal(d_e).min()),
               "dL_dE_negative_max": float(d_e[off].max()),
               "descent_lowers_positive_raises_negative_energy": signs_ok}
    if err_p <= EXACT and err_l <= EXACT and signs_ok:
        return Finding(
            "holds",
            f"Boltzmann(E=-z^T z, T=tau) = softmax to {err_p:.1e}; loss = E+/tau + log Z to "
            f"{err_l:.1e}",
            numbers,
            "exp(z_i^T z_k / tau) = exp(-E_ik / tau): P(k|i) is a Boltzmann distribution at "
            "temperature tau and L_i = E_{i,i+}/tau + log Z_i, the positive's energy relative "
            "to the log-partition function (a free energy). dL/dE_{i,i+} = (1 - P(i+|i))/(N tau) "
            "> 0 and dL/dE_ik = -P(k|i)/(N tau) < 0: descent lowers positive energies and raises "
            "negative ones.",
        )
    return Finding("fails", f"probabilities differ by {err_p:.3g}", numbers,
                   "The energy under test does not give the InfoNCE softmax.",
                   correction="With E(z_i, z_k) = -z_i^T z_k, P(k|i) = exp(-E_ik/tau)/Z_i and "
                   "L_i = E_{i,i+}/tau + log Z_i.")


def energy_descent(
    energy: EnergyFn, loss: LossFn, unit: bool, n: int, d: int, tau: float, steps: int,
    generator: torch.Generator,
) -> dict[str, dict[str, float]]:
    """Energies of the self-pair batch (positive of z_i: z_i itself, as in the article's
    demo; negatives: every k != i) at collapse (|c| = 1), at n orthonormal vectors, and along
    gradient descent on ``loss`` (step ``0.5 tau``, ``steps`` steps) from collapse plus
    ``0.05 xi``. ``unit``: the energies are those of the L2-normalised rows (the loss under
    test normalises); else of the raw rows.

    Each entry: ``energy_range``, ``mean_pair_energy`` (all N^2 pairs),
    ``mean_positive_pair_energy``, ``mean_negative_pair_energy`` and ``loss``."""
    off = ~torch.eye(n, dtype=torch.bool)

    def rows(z: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(z, dim=1) if unit else z

    def describe(z: torch.Tensor) -> dict[str, float]:
        e = energy(rows(z), rows(z))
        return {"energy_range": float(e.max() - e.min()), "mean_pair_energy": float(e.mean()),
                "mean_positive_pair_energy": float(torch.diagonal(e).mean()),
                "mean_negative_pair_energy": float(e[off].mean()), "loss": float(loss(z))}

    col = torch.nn.functional.normalize(collapsed(n, d, 1.0, generator), dim=1)
    out = {"collapsed": describe(col), "structured": describe(torch.eye(n, d,
                                                                       dtype=torch.float64))}
    z = col + 0.05 * torch.randn(n, d, generator=generator, dtype=torch.float64)
    out["start"] = describe(z)
    for _ in range(steps):
        z = z - 0.5 * tau * gradient(loss, z)
    out["end"] = describe(z)
    return out


def check_energy_collapse(
    energy: EnergyFn = article.energy,
    loss: LossFn | None = None,
    raw_loss: LossFn | None = None,
    n: int = 4,
    d: int = 4,
    tau: float = 0.5,
    steps: int = 100,
    seed: int = 0,
) -> Finding:
    """"Collapse equalizes energy: E = constant. Contrastive loss penalizes this. System moves
    toward lower-energy structured configuration", read as: the energy of the system, the
    mean of ``E`` over all pairs, falls. (The other reading, the positive pairs' energy, is
    the claim ``energy-collapse-positives``: :func:`check_energy_collapse_positives`.)

    Three parts, each decisive, for ``energy`` (default the article's ``-z_i^T z_k``) and
    ``loss`` (default the library's normalised self-pair InfoNCE, tau = 0.5: the article's
    loss on an encoder whose outputs are unit vectors, where the energy is bounded): (1) at
    collapse the energies are equal; (2) the loss at collapse exceeds the loss of a structured
    configuration (n orthonormal unit vectors); (3) gradient descent on the loss from a
    perturbed collapse lowers the mean pair energy. Reported: the same descent on ``raw_loss``
    (default the raw self-pair InfoNCE) with raw energies, and the raw energy at collapse for
    growing |c|."""
    f = loss if loss is not None else (lambda z: info_nce(z, z, temperature=tau))
    f_raw = raw_loss if raw_loss is not None else (
        lambda z: info_nce(z, z, temperature=tau, normalize=False))
    g = torch.Generator().manual_seed(seed)
    run = energy_descent(energy, f, True, n, d, tau, steps, g)
    at_col, at_orth, start, end = run["collapsed"], run["structured"], run["start"], run["end"]
    raw = energy_descent(energy, f_raw, False, n, d, tau, steps, g)
    numbers = {"collapsed": at_col, "structured": at_orth,
               "descent_from_perturbed_collapse": {"start": start, "end": end, "steps": steps},
               "raw_descent_from_perturbed_collapse": {"start": raw["start"], "end": raw["end"],
                                                       "steps": steps},
               "raw_energy_at_collapse_by_norm": {
                   str(r): float(energy(c, c)[0, 1])
                   for r, c in ((r, collapsed(2, d, r, g)) for r in (1.0, 10.0, 100.0))}}
    equal = at_col["energy_range"] <= EXACT
    penalised = at_col["loss"] > at_orth["loss"]
    lowered = end["mean_pair_energy"] < start["mean_pair_energy"]
    summary = (f"collapse: energy range {at_col['energy_range']:.1g}, loss "
               f"{at_col['loss']:.3f} vs structured {at_orth['loss']:.3f}; descent moves the mean "
               f"pair energy {start['mean_pair_energy']:.3f} -> {end['mean_pair_energy']:.3f} "
               f"(unit vectors), {raw['start']['mean_pair_energy']:.3f} -> "
               f"{raw['end']['mean_pair_energy']:.3f} (raw)")
    if equal and penalised and lowered:
        return Finding("holds", summary, numbers,
                       "Energies are equal at collapse, the loss penalises it, and descent "
                       "lowers the mean energy over all pairs.")
    return Finding(
        "fails",
        summary,
        numbers,
        "At collapse every energy is -|c|^2 and the softmax is uniform, so the loss is log N, "
        "above any structured configuration: equal energies and the penalty are right. Read "
        "as the energy of the system (the mean over all pairs), the direction is wrong: a "
        "counterexample is the article's loss on unit-vector embeddings, where descent raises "
        "that energy. For unit vectors the collapsed configuration has the lowest possible "
        "energy (-1 for every pair); training raises the energies of negatives (structured: "
        "0). What decreases is the free energy E_{i,i+}/tau + log Z_i (the loss). With raw dot "
        "products the mean over all pairs is -|mean z|^2, which descent barely moves; the "
        "energy -|c|^2 is unbounded below, lowered by growing norms, structured or not.",
        correction="The system moves to lower free energy (the loss), i.e. lower positive-pair "
        "energy relative to log Z; negative-pair energies rise, and for unit vectors collapse "
        "is the lowest-energy configuration.",
    )


def check_energy_collapse_positives(
    energy: EnergyFn = article.energy,
    loss: LossFn | None = None,
    unit: bool = False,
    n: int = 4,
    d: int = 4,
    tau: float = 0.5,
    steps: int = 100,
    seed: int = 0,
) -> Finding:
    """The same sentences read as the energy of the positive pairs ("Loss minimizes energy
    for positives"): at collapse the energies are equal, the loss penalises collapse, and
    gradient descent from a perturbed collapse lowers the mean positive-pair energy.

    Decisive: ``energy`` (default the article's ``-z_i^T z_k``) under ``loss`` (default the
    library's raw self-pair InfoNCE, tau = 0.5: the article's own setting, raw dot products);
    ``unit``: energies of the normalised rows (pass a normalised loss with it). Reported: the
    run on unit vectors (normalised loss)."""
    f = loss if loss is not None else (
        lambda z: info_nce(z, z, temperature=tau, normalize=unit))
    g = torch.Generator().manual_seed(seed)
    run = energy_descent(energy, f, unit, n, d, tau, steps, g)
    unit_run = energy_descent(energy, lambda z: info_nce(z, z, temperature=tau), True, n, d,
                              tau, steps, g)
    at_col, at_orth, start, end = run["collapsed"], run["structured"], run["start"], run["end"]
    numbers = {"collapsed": at_col, "structured": at_orth,
               "descent_from_perturbed_collapse": {"start": start, "end": end, "steps": steps},
               "unit_vectors_descent": {"start": unit_run["start"], "end": unit_run["end"]},
               "unit": unit}
    equal = at_col["energy_range"] <= EXACT
    penalised = at_col["loss"] > at_orth["loss"]
    # tolerance 1e-9: for unit vectors the self-pair energy is -1 to rounding
    lowered = end["mean_positive_pair_energy"] < start["mean_positive_pair_energy"] - 1e-9
    summary = (f"descent moves the positive-pair energy {start['mean_positive_pair_energy']:.3f}"
               f" -> {end['mean_positive_pair_energy']:.3f} ({'unit' if unit else 'raw'}; loss "
               f"{start['loss']:.3f} -> {end['loss']:.3f}); unit vectors: "
               f"{unit_run['start']['mean_positive_pair_energy']:.3f} -> "
               f"{unit_run['end']['mean_positive_pair_energy']:.3f}")
    if equal and penalised and lowered:
        return Finding(
            "holds", summary, numbers,
            "At collapse every energy is -|c|^2 and the loss is log N, above a structured "
            "configuration. Under the article's raw dot products, descent lowers the energy of "
            "the positive pairs (and raises that of the negatives): the loss is "
            "E_{i,i+}/tau + log Z_i. Much of the fall is growing norms (E_ii = -|z_i|^2 is "
            "unbounded below); for unit vectors with self-pairs the positive energy is -1 "
            "throughout, already its minimum at collapse.")
    return Finding(
        "fails", summary, numbers,
        "Under the energy, loss or setting tested, descent from a perturbed collapse does not "
        "lower the positive-pair energy (for unit vectors with self-pairs it is -1 "
        "throughout, already its minimum at collapse).",
        correction="With E = -z_i^T z_k and raw embeddings, InfoNCE descent lowers the "
        "positive-pair energy and raises the negative-pair energies; what it minimises is the "
        "free energy E_{i,i+}/tau + log Z_i.")


def _circle(theta: torch.Tensor) -> torch.Tensor:
    """(M,) angles -> (M, 2) unit vectors."""
    return torch.stack([theta.cos(), theta.sin()], dim=1)


def _on_circle(loss: LossFn) -> LossFn:
    """The loss as a function of the (M,) angles of points on the unit circle."""
    return lambda theta: loss(_circle(theta))


def _simulate(loss: LossFn, theta0: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """Gradient descent on the angles of points on the unit circle."""
    theta = theta0.clone()
    f = _on_circle(loss)
    for _ in range(steps):
        theta = theta - lr * gradient(f, theta)
    return theta


def gaussian_repulsion(u: torch.Tensor, t: float) -> torch.Tensor:
    """Wang & Isola's uniformity ``log mean_{i<j} exp(-t |u_i - u_j|^2)`` (differentiable)."""
    sq = torch.cdist(u, u).pow(2)
    iu = torch.triu_indices(u.shape[0], u.shape[0], offset=1)
    return torch.logsumexp(-t * sq[iu[0], iu[1]], dim=0) - math.log(iu.shape[1])


def pair_force(t: float, r: float) -> float:
    """Magnitude of the force between two points at distance r under the Gaussian potential
    ``exp(-t r^2)``, by autograd (closed form ``2 t r exp(-t r^2)``)."""
    x = torch.tensor([r], dtype=torch.float64)
    return abs(float(gradient(lambda y: torch.exp(-t * y.pow(2)).sum(), x)[0]))


def check_charged_particles(
    loss: Callable[[int, float], LossFn] | None = None,
    pairs: int = 8,
    tau: float = 0.5,
    steps: int = 400,
    lr: float | None = None,
    seed: int = 0,
) -> Finding:
    """Positive pairs attract, negatives repel, "repulsive forces prevent" collapse,
    "equilibrium occurs when forces balance".

    ``loss(pairs, tau)`` returns the objective of the stacked (2 pairs, 2) unit vectors
    (default: the library's normalised NT-Xent, rows i and i + pairs positive). Decisive,
    2N points on the unit circle started inside an arc of 0.2 rad (near collapse) under
    gradient descent: (1) positive pairs merge (alignment < 1e-3), (2) the pairs spread
    (resultant length ``|mean u| < 0.1``), while pure attraction collapses; (3) whether
    collapse is excluded: the loss at exact collapse is infinite (a singular, Coulomb-like
    potential) rather than a finite equilibrium with zero net force. Reported: the exact
    rewriting of normalised NT-Xent as alignment plus a log-sum of Gaussian kernels, the
    pair force of that kernel by distance, and the force at exact collapse."""
    def nt(p: int, t: float) -> LossFn:
        return lambda z: nt_xent(z[:p], z[p:], temperature=t)

    make = loss if loss is not None else nt
    g = torch.Generator().manual_seed(seed)
    m = 2 * pairs
    u = torch.nn.functional.normalize(torch.randn(m, 3, generator=g, dtype=torch.float64), dim=1)
    u1, u2 = u[:pairs], u[pairs:]
    sq = torch.cdist(u, u).pow(2) / (2 * tau)  # |u_i - w_k|^2 / (2 tau)
    sq.fill_diagonal_(math.inf)
    partner = torch.cat([torch.arange(pairs, m), torch.arange(pairs)])
    rewritten = (sq[torch.arange(m), partner] + torch.logsumexp(-sq, dim=1)).mean()
    err_identity = abs(float(rewritten - nt_xent(u1, u2, temperature=tau)))

    theta0 = 0.2 * torch.rand(m, generator=g, dtype=torch.float64)
    runs: dict[str, LossFn] = {"attraction only": pairwise_attraction_loss,
                               "loss under test": make(pairs, tau)}
    lrs = {"attraction only": 0.2 / (4 * m), "loss under test": lr if lr is not None else 0.5 * tau}
    rows = {}
    for name, f in runs.items():
        theta = _simulate(f, theta0, steps, lrs[name])
        z = _circle(theta)
        gaps = torch.diff(torch.sort(torch.remainder(theta, 2 * math.pi)).values,
                          append=(torch.remainder(theta, 2 * math.pi).min() + 2 * math.pi)[None])
        rows[name] = {
            "resultant_length": float(z.mean(dim=0).norm()),  # 1 = collapsed, 0 = balanced
            "uniformity": uniformity(z),
            "alignment_of_pairs": alignment(z[:pairs], z[pairs:]),
            "largest_gap_over_2pi": float(gaps.max()) / (2 * math.pi),
            "final_grad_norm": float(gradient(_on_circle(f), theta).norm()),
        }
    c = collapsed(m, 2, 1.0, g)
    loss_at_collapse = float(runs["loss under test"](c))
    force_at_collapse = (float(gradient(runs["loss under test"], c).norm())
                         if math.isfinite(loss_at_collapse) else math.inf)
    t = 1.0 / (2 * tau)  # kernel exp(-t r^2)
    radii = (0.0, 0.01, 1.0 / math.sqrt(2 * t), 2.0)
    numbers = {
        "nt_xent_equals_alignment_plus_gaussian_log_sum_abs_err": err_identity,
        "pair_force_by_distance": {f"{r:.3g}": pair_force(t, r) for r in radii},
        "runs": rows,
        "loss_at_exact_collapse": loss_at_collapse,
        "force_at_exact_collapse": force_at_collapse,
        "gaussian_repulsion_at_collapse": float(gaussian_repulsion(c, t)),
        "uniformity_at_collapse": uniformity(c),
    }
    att, test = rows["attraction only"], rows["loss under test"]
    attract = test["alignment_of_pairs"] < 1e-3 and att["resultant_length"] > 0.99
    repel = test["resultant_length"] < 0.1
    excluded = loss_at_collapse == math.inf  # nan (0 * inf) is not an exclusion
    summary = (f"on the circle: attraction alone collapses (|mean u| = "
               f"{att['resultant_length']:.3f}); the loss merges pairs (alignment "
               f"{test['alignment_of_pairs']:.1e}) and spreads them (|mean u| = "
               f"{test['resultant_length']:.1e}, largest gap {test['largest_gap_over_2pi']:.3f} "
               f"x 2pi vs 1/{pairs}); at exact collapse loss {loss_at_collapse:.3g}, force "
               f"{force_at_collapse:.1e}")
    if not (attract and repel):
        return Finding("fails", summary, numbers,
                       "The loss under test does not act as attraction of positives plus "
                       "repulsion of negatives on the circle.",
                       correction="Normalised NT-Xent is attraction of positives plus a "
                       "Gaussian-kernel repulsion; it merges pairs and spreads them.")
    if excluded:
        return Finding("holds", summary, numbers,
                       "Positives attract, negatives repel, and the repulsive potential is "
                       "infinite at coincidence: collapse is excluded.")
    return Finding(
        "holds-with-correction",
        summary,
        numbers,
        "For unit vectors NT-Xent = mean_i [|u_i - v_i|^2/(2 tau) + log sum_{k != i} "
        "exp(-|u_i - w_k|^2/(2 tau))] exactly: springs between positives plus a repulsion "
        "through a Gaussian kernel of the distance (the Wang-Isola uniformity potential), "
        "softmax-weighted. On the circle the pairs merge and the pair centres spread evenly, "
        "while pure attraction collapses. The potential is bounded (finite at distance 0, "
        "unlike Coulomb's 1/r) and the pair force 2 t r exp(-t r^2) vanishes as two points "
        "meet (largest at r = 1/sqrt(2t)), so collapse is not excluded: at exact collapse "
        "the net force is 0 and it is an unstable equilibrium that perturbations leave. The "
        "repulsion exists only because the embeddings are normalised; with raw dot products "
        "the loss is lowered by growing norms instead.",
        correction="The analogy holds for L2-normalised embeddings that start away from exact "
        "collapse: the repulsion is a bounded Gaussian potential (Wang & Isola 2020), not a "
        "Coulomb one, so exact collapse is an equilibrium with zero net force, unstable but "
        "not prevented.",
    )
