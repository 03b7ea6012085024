"""A training recipe whose trained error reflects the m_h budget (Fig. 5, issue 11 §1).

Jiang & Li (2024) read the approximation error of a budget off the training
error of a model "trained until the loss plateaus". With `tfapprox.training.fit`'s
defaults the Fig. 5 error sits on a floor near 3e-4 (MSE) for every m_h ≥ 2
on ``fig5b-r6``: the optimiser, not the budget, sets it. This script measures
recipes and compares the trained error with the **truncation error** of the
target (ρ replaced by its best rank-m_h approximation, the first m_h POD terms,
which is what the bound's construction uses).

The model is exactly `tfapprox.models.build_transformer`'s (learned or no
position encoding, f̂ = 3 ReLU layers of width m_FF, W_Q, W_K, W_V without
bias or scale, F̂ = 3 ReLU layers), written as a pure JAX function so that a
whole *ensemble* (members differing in m_h, seed and initial scale) trains in
one compiled step: W_Q and W_K are padded to the largest m_h and masked per
member (the masked columns stay exactly zero, so member i is exactly a model
of key width m_h[i]). `check_against_keras` verifies the forward pass against
the Keras model with the same weights.

Training samples a **fresh batch from the target at every step** (inputs
U[0,1], ``y = H(x)`` computed in JAX in float32, checked against
`Target.__call__`), so there is no fixed training set and the error measured on
held-out samples is an honest approximation error. Adam is written by hand
(no optax here); the learning rate has a linear warm-up and a cosine decay to
``lr_min``.

Errors are reported in MSE (mean over samples, positions and outputs) and in
paper A's norm (mean over inputs of ``Σ_t |H_t − Ĥ_t|``), on a fixed evaluation
set drawn with `Target.sample(n_eval, seed=EVAL_SEED)`.

Usage::

    python -m analysis.recipe --quick            # ≤ 90 s: trained vs truncation, fig5b-r2, m_h 1-2
    python -m analysis.recipe                    # every experiment (hours on 2 CPU cores)
    python -m analysis.recipe --report           # the evidence tables of the logged runs
    python -m analysis.recipe --experiment truncation --json

Each experiment appends its rows to ``runs/recipe/<experiment>.jsonl`` as it
goes, so an interrupted run loses nothing.
"""

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

EVAL_SEED = 987_654
FIG5_PRESETS = ("fig5b-r2", "fig5b-r6", "fig5b-rinf", "fig5a-r2", "fig5a-r6", "fig5a-rinf")

# --------------------------------------------------------------------------
# Targets and truncation errors (NumPy only)


def load_target(name):
    from tfapprox.targets import load_preset

    return load_preset(name)


def truncated_target(target, k):
    """The fig5 target with ρ cut to its first ``k`` POD terms (best rank-k approximation)."""
    from tfapprox.targets import fig5_target

    if target.family != "fig5":
        raise ValueError(f"truncation is implemented for fig5 targets only, not {target.family!r}")
    terms = target.singular_values.size
    if k >= terms:
        return target
    return fig5_target(target.beta, rank=k, c_beta=target.c_beta, tau=target.sequence_length)


def errors(y_true, y_pred):
    """``{"mse": …, "paper": …}``: MSE and paper A's mean over inputs of Σ_t |H_t − Ĥ_t|."""
    diff = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)
    return {
        "mse": float(np.mean(diff**2)),
        "paper": float(np.mean(np.sum(np.abs(diff).sum(axis=-1), axis=1))),
    }


def truncation_errors(target, ks, n_eval=20_000, seed=EVAL_SEED):
    """Error of the target against its rank-k truncation for each k, on ``n_eval`` samples."""
    data = target.sample(n_eval, seed=seed)
    x = data.x.astype(np.float64)
    y = target(x)
    out = {}
    for k in ks:
        out[int(k)] = errors(y, truncated_target(target, k)(x))
    return out


# --------------------------------------------------------------------------
# The model and the target in JAX


def _jax():
    import jax
    import jax.numpy as jnp

    return jax, jnp


def target_fn(target):
    """``H`` of a fig5 target as a JAX function ``x (B, τ, 1) -> (B, τ, 1)`` (float32)."""
    _, jnp = _jax()
    sigma = jnp.asarray(target.singular_values, dtype=jnp.float32)  # (r,)
    freq = jnp.arange(1, sigma.size + 1, dtype=jnp.float32)

    def H(x):
        phi = math.sqrt(2.0) * jnp.sin(2.0 * jnp.pi * x * freq)  # (B, tau, r)
        logits = jnp.einsum("btr,bsr->bts", phi * sigma, phi)  # (B, tau, tau)
        weights = jnp.exp(logits - logits.max(-1, keepdims=True))
        weights = weights / weights.sum(-1, keepdims=True)
        return weights @ x  # (B, tau, 1)

    return H


def init_member(
    key,
    m_h,
    m_h_max,
    *,
    n=32,
    m_v=32,
    m_ff=128,
    depth=3,
    tau=16,
    d=1,
    init_scale=1.0,
    position_encoding="learned",
    bias_init="zeros",
):
    """Parameters of one model, Keras' initialisation (Glorot uniform, zero biases, e ~ U[-1,1]).

    W_Q and W_K are padded with zero columns to ``m_h_max``; Glorot's limit
    uses the real fan-out m_h, as Keras would. ``init_scale`` multiplies every
    initial kernel. ``bias_init``: ``"zeros"`` (Keras' default), ``"kinks"``
    (the first layer of f̂ gets ``b = −w·c`` with ``c ~ U`` over the input range,
    so its ReLU kinks are spread over the data instead of all sitting at 0;
    every other bias zero) or ``"uniform:a"`` (every hidden bias U[−a, a]).
    """
    jax, jnp = _jax()
    keys = iter(jax.random.split(key, 4 * depth + 8))

    def glorot(shape, fan_out=None):
        fan_in = shape[0]
        fan_out = shape[1] if fan_out is None else fan_out
        limit = init_scale * math.sqrt(6.0 / (fan_in + fan_out))
        return jax.random.uniform(next(keys), shape, jnp.float32, -limit, limit)

    def ffn(d_in, d_out):
        widths = [d_in] + [m_ff] * depth + [d_out]
        return [
            {"w": glorot((a, b)), "b": jnp.zeros((b,), jnp.float32)}
            for a, b in zip(widths[:-1], widths[1:])
        ]

    mask = (jnp.arange(m_h_max) < m_h).astype(jnp.float32)
    f_layers = ffn(d, n)
    F_layers = ffn(m_v, d)
    if bias_init == "kinks":
        lo, hi = (-1.0, 2.0) if position_encoding == "learned" else (0.0, 1.0)
        first = f_layers[0]
        c = jax.random.uniform(next(keys), first["b"].shape, jnp.float32, lo, hi)
        first["b"] = -(first["w"].sum(0)) * c
    elif bias_init.startswith("uniform:"):
        a = float(bias_init.split(":")[1])
        for layer in f_layers[:-1] + F_layers[:-1]:
            layer["b"] = jax.random.uniform(next(keys), layer["b"].shape, jnp.float32, -a, a)
    elif bias_init != "zeros":
        raise ValueError(f"unknown bias_init {bias_init!r}")
    params = {
        "f": f_layers,
        "wq": glorot((n, m_h_max), m_h) * mask,
        "wk": glorot((n, m_h_max), m_h) * mask,
        "wv": glorot((n, m_v)),
        "F": F_layers,
    }
    if position_encoding == "learned":
        params["e"] = jax.random.uniform(next(keys), (tau, d), jnp.float32, -1.0, 1.0)
    return params, mask


def _ffn_apply(layers, h):
    _, jnp = _jax()
    for layer in layers[:-1]:
        h = jnp.maximum(h @ layer["w"] + layer["b"], 0.0)
    return h @ layers[-1]["w"] + layers[-1]["b"]


def apply_member(params, mask, x, use_scale=False):
    """Ĥ(x) for one member: ``(B, τ, d) -> (B, τ, 1)``.

    ``mask`` is the (m_h_max,) 0/1 vector of live W_Q/W_K columns, or a dict
    with it under ``"qk"`` and the learned-encoding switch under ``"pe"``.
    """
    jax, jnp = _jax()
    pe = 1.0
    if isinstance(mask, dict):
        mask, pe = mask["qk"], mask["pe"]
    h = x + pe * params["e"][None] if "e" in params else x
    h = _ffn_apply(params["f"], h)  # (B, tau, n)
    q = h @ (params["wq"] * mask)  # (B, tau, m_h_max)
    k = h @ (params["wk"] * mask)
    v = h @ params["wv"]  # (B, tau, m_v)
    logits = jnp.einsum("btk,bsk->bts", q, k)  # (B, tau, tau)
    if use_scale:
        logits = logits / jnp.sqrt(mask.sum())
    weights = jax.nn.softmax(logits, axis=-1)
    return _ffn_apply(params["F"], weights @ v)  # (B, tau, 1)


def to_keras_weights(params, model):
    """Load one member's parameters into a `build_transformer` model (for checks and export)."""
    m_h = model.get_layer("attention").key_dim
    pe = model.get_layer("position_encoding")
    if "e" in params:
        pe.embeddings.assign(np.asarray(params["e"]))
    for name in ("f", "F"):
        layer = model.get_layer("f_hat" if name == "f" else "F_hat")
        for dense, p in zip(layer.hidden_layers + [layer.output_layer], params[name]):
            dense.kernel.assign(np.asarray(p["w"]))
            dense.bias.assign(np.asarray(p["b"]))
    att = model.get_layer("attention")
    att.query_kernel.assign(np.asarray(params["wq"])[:, :m_h])
    att.key_kernel.assign(np.asarray(params["wk"])[:, :m_h])
    att.value_kernel.assign(np.asarray(params["wv"]))
    return model


def check_against_keras(m_h=3, position_encoding="learned", seed=0):
    """Max |Ĥ_jax − Ĥ_keras| for one random member loaded into the Keras model."""
    jax, jnp = _jax()
    from tfapprox import Budget
    from tfapprox.models import build_transformer

    params, mask = init_member(
        jax.random.PRNGKey(seed), m_h, 8, position_encoding=position_encoding
    )
    model = build_transformer(
        Budget(n=32, m_h=m_h, m_v=32, m_ff=128), 16, 1, position_encoding=position_encoding
    )
    to_keras_weights(params, model)
    x = np.random.default_rng(seed).random((4, 16, 1)).astype(np.float32)
    ours = np.asarray(apply_member(params, mask, jnp.asarray(x)))
    theirs = np.asarray(model(x))
    return float(np.abs(ours - theirs).max())


# --------------------------------------------------------------------------
# Ensemble training


DEFAULT_RECIPE = {
    "steps": 8000,
    "batch": 256,
    "lr": 3e-3,
    "lr_min": 1e-5,
    "warmup": 200,
    "schedule": "cosine",
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "clip": None,
    "init_scale": 1.0,
    "position_encoding": "learned",
    "bias_init": "zeros",
    "use_scale": False,
    "fresh": True,
    "num_samples": 2000,
    "lbfgs": 0,
    "lbfgs_samples": 4096,
}


def lr_at(step, recipe):
    """Learning rate at ``step`` (a JAX scalar): warm-up, then cosine/constant/linear decay."""
    _, jnp = _jax()
    step = jnp.asarray(step, jnp.float32)
    total, warm = recipe["steps"], max(recipe["warmup"], 0)
    lr, lr_min = recipe["lr"], recipe["lr_min"]
    frac = jnp.clip((step - warm) / max(total - warm, 1), 0.0, 1.0)
    if recipe["schedule"] == "cosine":
        decayed = lr_min + 0.5 * (lr - lr_min) * (1 + jnp.cos(jnp.pi * frac))
    elif recipe["schedule"] == "linear":
        decayed = lr + (lr_min - lr) * frac
    elif recipe["schedule"] == "exp":
        decayed = lr * (lr_min / lr) ** frac
    else:
        decayed = jnp.full_like(frac, lr)
    ramp = jnp.minimum(1.0, (step + 1) / warm) if warm else 1.0
    return decayed * ramp


class Ensemble:
    """E members (m_h, seed, init scale) of one target trained together in one compiled step."""

    def __init__(
        self,
        target,
        m_hs=None,
        seeds=(0,),
        recipe=None,
        *,
        members=None,
        m_ff=128,
        n=32,
        m_v=32,
        depth=3,
    ):
        """``members``: list of dicts with ``m_h``, ``seed`` and optionally ``pe``
        (``"learned"``/``"none"``), ``init_scale`` and ``lr_scale`` (a factor on the
        recipe's learning rate); default: every (m_h, seed) pair with the recipe's settings."""
        jax, jnp = _jax()
        self.target = target
        self.recipe = {**DEFAULT_RECIPE, **(recipe or {})}
        if members is None:
            members = [{"m_h": m, "seed": s} for s in seeds for m in m_hs]
        self.members = [
            {
                "m_h": int(mb["m_h"]),
                "seed": int(mb.get("seed", 0)),
                "pe": mb.get("pe", self.recipe["position_encoding"]),
                "init_scale": float(mb.get("init_scale", self.recipe["init_scale"])),
                "lr_scale": float(mb.get("lr_scale", 1.0)),
                "bias_init": mb.get("bias_init", self.recipe["bias_init"]),
            }
            for mb in members
        ]
        self.m_h_max = max(mb["m_h"] for mb in self.members)
        self.tau = target.sequence_length
        self.H = target_fn(target)
        inits = []
        for mb in self.members:
            params, mask = init_member(
                jax.random.PRNGKey(1000 * mb["seed"] + mb["m_h"]),
                mb["m_h"],
                self.m_h_max,
                n=n,
                m_v=m_v,
                m_ff=m_ff,
                depth=depth,
                tau=self.tau,
                init_scale=mb["init_scale"],
                position_encoding=mb["pe"],
                bias_init=mb["bias_init"],
            )
            if mb["pe"] == "none":
                params["e"] = jnp.zeros((self.tau, 1), jnp.float32)
            inits.append((params, mask))
        self.params = jax.tree.map(lambda *a: jnp.stack(a), *[p for p, _ in inits])
        self.masks = {
            "qk": jnp.stack([mk for _, mk in inits]),  # (E, m_h_max)
            "pe": jnp.asarray([mb["pe"] == "learned" for mb in self.members], jnp.float32),
            "lr": jnp.asarray([mb["lr_scale"] for mb in self.members], jnp.float32),
        }
        self.opt = {
            "m": jax.tree.map(jnp.zeros_like, self.params),
            "v": jax.tree.map(jnp.zeros_like, self.params),
        }
        self.step = 0
        self.seconds = 0.0
        self._key = jax.random.PRNGKey(12345 + 7 * self.members[0]["seed"])
        if not self.recipe["fresh"]:
            data = target.sample(self.recipe["num_samples"], seed=self.members[0]["seed"])
            self._x = jnp.asarray(data.x, jnp.float32)
            self._y = jnp.asarray(data.y, jnp.float32)
        use_scale = self.recipe["use_scale"]
        self._chunk = jax.jit(self._make_chunk(), static_argnums=(3,), donate_argnums=(0, 1))
        self._predict = jax.jit(
            jax.vmap(lambda p, mk, x: apply_member(p, mk, x, use_scale), in_axes=(0, 0, None))
        )

    @property
    def size(self):
        return len(self.members)

    def _make_chunk(self):
        jax, jnp = _jax()
        recipe = self.recipe
        H, tau, batch = self.H, self.tau, recipe["batch"]
        b1, b2, eps, clip = recipe["beta1"], recipe["beta2"], recipe["eps"], recipe["clip"]
        use_scale = recipe["use_scale"]
        fresh = recipe["fresh"]

        def member_loss(p, mk, x, y):
            return jnp.mean((apply_member(p, mk, x, use_scale) - y) ** 2)

        def ens_loss(params, masks, x, y):
            losses = jax.vmap(member_loss, in_axes=(0, 0, None, None))(params, masks, x, y)
            return losses.sum(), losses

        grad_fn = jax.grad(ens_loss, has_aux=True)

        def one_step(carry, step):
            params, opt, masks, key = carry
            key, sub = jax.random.split(key)
            if fresh:
                x = jax.random.uniform(sub, (batch, tau, 1), jnp.float32)
                y = H(x)
            else:
                idx = jax.random.randint(sub, (batch,), 0, self._x.shape[0])
                x, y = self._x[idx], self._y[idx]
            grads, losses = grad_fn(params, masks, x, y)
            if clip:
                norms = jnp.sqrt(
                    sum(
                        jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1)
                        for g in jax.tree.leaves(grads)
                    )
                )  # (E,)
                factor = jnp.minimum(1.0, clip / (norms + 1e-12))
                grads = jax.tree.map(
                    lambda g: g * factor.reshape((-1,) + (1,) * (g.ndim - 1)), grads
                )
            lr = lr_at(step, recipe) * masks["lr"]  # (E,)
            t = step.astype(jnp.float32) + 1.0
            m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, opt["m"], grads)
            v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, opt["v"], grads)
            corr = jnp.sqrt(1 - b2**t) / (1 - b1**t)
            params = jax.tree.map(
                lambda p, m, v: (
                    p - (lr * corr).reshape((-1,) + (1,) * (p.ndim - 1)) * m / (jnp.sqrt(v) + eps)
                ),
                params,
                m,
                v,
            )
            return (params, {"m": m, "v": v}, masks, key), losses

        def chunk(params, opt, key, length, start, masks):
            steps = start + jnp.arange(length)
            (params, opt, _, key), losses = jax.lax.scan(one_step, (params, opt, masks, key), steps)
            return params, opt, key, losses.mean(axis=0)

        return lambda params, opt, key, length, start, masks: chunk(
            params, opt, key, length, start, masks
        )

    def train(self, steps=None, chunk=500, log=None):
        """Run ``steps`` more steps (default: the recipe's) in compiled chunks."""
        import jax

        steps = self.recipe["steps"] if steps is None else steps
        done = 0
        while done < steps:
            length = min(chunk, steps - done)
            t0 = time.perf_counter()
            self.params, self.opt, self._key, losses = self._chunk(
                self.params, self.opt, self._key, length, self.step, self.masks
            )
            losses = np.asarray(jax.block_until_ready(losses))
            self.seconds += time.perf_counter() - t0
            self.step += length
            done += length
            if log is not None:
                log(self.step, losses)
        return self

    def predict(self, x, batch=2048):
        _, jnp = _jax()
        outs = []
        for start in range(0, len(x), batch):
            outs.append(
                np.asarray(
                    self._predict(self.params, self.masks, jnp.asarray(x[start : start + batch]))
                )
            )
        return np.concatenate(outs, axis=1)  # (E, N, tau, 1)

    def evaluate(self, data):
        """Per-member ``{"mse", "paper"}`` on a `Dataset`."""
        pred = self.predict(data.x.astype(np.float32))
        return [errors(data.y, p) for p in pred]

    # -- full-batch L-BFGS finisher -------------------------------------

    def lbfgs(self, iters, n_samples=4096, seed=55, which=None):
        """Polish every member with `tfapprox.finisher.lbfgs` on a fixed sample of ``n_samples``.

        Uses the float64-free float32 loss; each member separately (the flat
        vector is one member's parameters). Returns the seconds spent.
        """
        import jax
        import jax.numpy as jnp
        from jax.flatten_util import ravel_pytree

        from tfapprox import finisher

        data = self.target.sample(n_samples, seed=seed)
        x = jnp.asarray(data.x, jnp.float32)
        y = jnp.asarray(data.y, jnp.float32)
        use_scale = self.recipe["use_scale"]
        t0 = time.perf_counter()
        new = []
        for i in range(self.size):
            p_i = jax.tree.map(lambda a, i=i: a[i], self.params)
            if which is not None and i not in which:
                new.append(p_i)
                continue
            mk = jax.tree.map(lambda a, i=i: a[i], self.masks)
            flat, unravel = ravel_pytree(p_i)

            @jax.jit
            def fg(w, mk=mk, unravel=unravel):
                def loss(w):
                    return jnp.mean((apply_member(unravel(w), mk, x, use_scale) - y) ** 2)

                return jax.value_and_grad(loss)(w)

            def fun(w):
                val, g = fg(jnp.asarray(w, jnp.float32))
                return float(val), np.asarray(g, dtype=np.float64)

            weights, _ = finisher.lbfgs(fun, np.asarray(flat, np.float64), iters)
            new.append(unravel(jnp.asarray(weights, jnp.float32)))
        self.params = jax.tree.map(lambda *a: jnp.stack(a), *new)
        # Masked columns of W_Q/W_K may have moved (their gradient is zero, so they do not).
        return time.perf_counter() - t0


# --------------------------------------------------------------------------
# Experiments


def _log_path(name):
    folder = os.path.join("runs", "recipe")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{name}.jsonl")


def _append(name, row):
    with open(_log_path(name), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")


def run_recipe(
    preset,
    m_hs=None,
    seeds=(0,),
    recipe=None,
    *,
    members=None,
    n_eval=4096,
    log_name=None,
    label="",
    verbose=True,
    m_ff=128,
    m_v=32,
):
    """Train one ensemble with ``recipe``; return one row per member.

    Each row: preset, the member's settings, label, recipe, steps, seconds,
    mse, paper (and the errors after the L-BFGS finisher when the recipe asks)."""
    target = load_target(preset)
    ens = Ensemble(target, m_hs, seeds, recipe, members=members, m_ff=m_ff, m_v=m_v)
    data = target.sample(n_eval, seed=EVAL_SEED)
    t0 = time.perf_counter()
    curve = []
    ens.train(log=lambda step, losses: curve.append((step, losses.tolist())))
    train_s = time.perf_counter() - t0
    res = ens.evaluate(data)
    rows = []
    lb_s = 0.0
    lb = None
    if ens.recipe["lbfgs"]:
        lb_s = ens.lbfgs(
            ens.recipe["lbfgs"], ens.recipe["lbfgs_samples"], which=ens.recipe.get("lbfgs_members")
        )
        lb = ens.evaluate(data)
    for i, mb in enumerate(ens.members):
        row = {
            "preset": preset,
            **mb,
            "label": label,
            "m_ff": m_ff,
            "m_v": m_v,
            "recipe": ens.recipe,
            "steps": ens.step,
            "members": ens.size,
            "seconds": round(train_s, 2),
            "mse": res[i]["mse"],
            "paper": res[i]["paper"],
            "steps_per_s": round(ens.step / train_s, 2),
            "curve": [(step, losses[i]) for step, losses in curve],
        }
        if lb is not None:
            row.update(
                {
                    "mse_lbfgs": lb[i]["mse"],
                    "paper_lbfgs": lb[i]["paper"],
                    "lbfgs_seconds": round(lb_s, 2),
                }
            )
        rows.append(row)
        if log_name:
            _append(log_name, row)
    if verbose:
        _print_rows(rows)
    return rows


def _print_rows(rows):
    for r in rows:
        extra = f"  lbfgs {r['mse_lbfgs']:.2e}" if "mse_lbfgs" in r else ""
        print(
            f"{r['preset']:11s} {r['label']:14s} m_h={r['m_h']:2d} s={r['seed']} "
            f"pe={r['pe']:7s} bias={r['bias_init']:5s} init={r['init_scale']:g} "
            f"lr={r['lr_scale']:g} "
            f"mse={r['mse']:.2e} paper={r['paper']:.3f}{extra} "
            f"({r['steps']} steps, {r['seconds']:.0f}s, E={r['members']})",
            flush=True,
        )


#: The recommended recipe's settings (analysis/RECIPE.md has the evidence) at
#: 3,000 steps, the length most of its runs could afford; the recommendation is
#: at least 12,000 steps: ``{**RECOMMENDED, "steps": 12000}``.
RECOMMENDED = {
    "batch": 64,
    "lr": 3e-3,
    "lr_min": 1e-5,
    "warmup": 200,
    "schedule": "cosine",
    "steps": 3000,
    "fresh": True,
    "position_encoding": "none",
    "bias_init": "kinks",
    "use_scale": False,
}

#: The experiments of the full run: (label, preset, members, recipe, m_ff, m_v). All on
#: fig5b-r6 (ρ of rank 6), the target of issue 11 §1; every run samples fresh batches.
_BASE = {
    "batch": 64,
    "lr": 3e-3,
    "lr_min": 1e-5,
    "warmup": 200,
    "schedule": "cosine",
    "steps": 3000,
}
EXPERIMENTS = {
    # Position encoding, with Keras' zero biases.
    "pe": [
        (
            "A learned/zeros",
            "fig5b-r6",
            [{"m_h": m, "pe": pe} for pe in ("learned", "none") for m in (2, 6)],
            _BASE,
            128,
            32,
        ),
    ],
    # Bias initialisation of f̂'s first layer (kinks spread over the inputs).
    "bias": [
        (
            "B kinks",
            "fig5b-r6",
            [
                {"m_h": m, "pe": pe, "bias_init": "kinks"}
                for pe in ("none", "learned")
                for m in (2, 6)
            ]
            + [{"m_h": 6, "pe": "none", "bias_init": "uniform:0.5"}],
            _BASE,
            128,
            32,
        ),
    ],
    # Steps: 3k (plus an L-BFGS finisher on one member, and a restart: seed 1), 6k, 12k.
    "steps": [
        (
            "C 3k",
            "fig5b-r6",
            [{"m_h": 1}, {"m_h": 4}, {"m_h": 6, "seed": 1}],
            {**RECOMMENDED, "lbfgs": 50, "lbfgs_samples": 1024, "lbfgs_members": [2]},
            128,
            32,
        ),
        ("C b64 6k", "fig5b-r6", [{"m_h": 2}, {"m_h": 6}], {**RECOMMENDED, "steps": 6000}, 128, 32),
        (
            "F b64 12k",
            "fig5b-r6",
            [{"m_h": 1}, {"m_h": 6}],
            {**RECOMMENDED, "steps": 12000},
            128,
            32,
        ),
    ],
    # The recommended recipe at 12k steps: more m_h on fig5b-r6, and fig5b-r2.
    "sweep12k": [
        (
            "G b64 12k",
            "fig5b-r6",
            [{"m_h": m} for m in (2, 4, 8)],
            {**RECOMMENDED, "steps": 12000},
            128,
            32,
        ),
        (
            "G b64 12k",
            "fig5b-r2",
            [{"m_h": m} for m in (1, 2)],
            {**RECOMMENDED, "steps": 12000},
            128,
            32,
        ),
    ],
    # A scalar value channel (m_v = 1): does the rank budget bind then?
    "m_v": [
        ("E m_v=1 3k", "fig5b-r6", [{"m_h": m} for m in (1, 2, 6)], RECOMMENDED, 128, 1),
    ],
}


def run_experiment(name, log=True):
    rows = []
    for label, preset, members, recipe, m_ff, m_v in EXPERIMENTS[name]:
        rows += run_recipe(
            preset,
            members=members,
            recipe=recipe,
            m_ff=m_ff,
            m_v=m_v,
            label=label,
            log_name=name if log else None,
        )
    return rows


def report(folder=None):
    """Markdown table of every logged run, with the truncation error of its m_h."""
    folder = folder or os.path.join("runs", "recipe")
    rows = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".jsonl"):
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                rows += [json.loads(line) for line in fh if line.strip()]
    trunc = {}
    lines = [
        "| run | preset | m_h | seed | PE | bias init | m_v | m_FF | steps | batch | MSE | "
        "paper norm | trunc. MSE | trunc. paper | L-BFGS MSE | s |",
        "|" + "---|" * 16,
    ]
    for r in rows:
        if r["preset"] not in trunc:
            trunc[r["preset"]] = truncation_errors(
                load_target(r["preset"]), range(1, 17), n_eval=20_000
            )
        t = trunc[r["preset"]][r["m_h"]]
        lb = f"{r['mse_lbfgs']:.2e}" if "mse_lbfgs" in r else ""
        lines.append(
            f"| {r['label']} | {r['preset']} | {r['m_h']} | {r['seed']} | {r['pe']} | "
            f"{r.get('bias_init', 'zeros')} | {r.get('m_v', 32)} | {r.get('m_ff', 128)} | "
            f"{r['steps']} | {r['recipe']['batch']} | {r['mse']:.2e} | {r['paper']:.3f} | "
            f"{t['mse']:.1e} | {t['paper']:.3f} | {lb} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def quick():
    """≤ 90 s: truncation errors of fig5b-r2 and a short recommended-recipe run at m_h = 1, 2."""
    target = "fig5b-r2"
    trunc = truncation_errors(load_target(target), (1, 2), n_eval=4096)
    rows = run_recipe(
        target,
        members=[{"m_h": 1}, {"m_h": 2}],
        recipe={**RECOMMENDED, "steps": 400, "warmup": 50},
        n_eval=2048,
        label="quick 400",
    )
    for row in rows:
        t = trunc[row["m_h"]]
        print(
            f"  m_h={row['m_h']}: trained MSE {row['mse']:.2e} vs rank-{row['m_h']} truncation "
            f"MSE {t['mse']:.2e} (paper norm {row['paper']:.3f} vs {t['paper']:.3f})"
        )
    return {"truncation": {target: trunc}, "runs": rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="≤ 90 s smoke version of the key table"
    )
    parser.add_argument(
        "--experiment",
        action="append",
        choices=["truncation", *EXPERIMENTS],
        help="run only these experiments (repeatable); default all",
    )
    parser.add_argument("--json", action="store_true", help="print the result dict as JSON")
    parser.add_argument(
        "--report",
        action="store_true",
        help="print the markdown tables of the logged runs (runs/recipe/) and exit",
    )
    args = parser.parse_args(argv)
    if args.report:
        text = report()
        print(text)
        return {"report": text}
    if args.quick:
        result = quick()
    else:
        names = args.experiment or ["truncation", *EXPERIMENTS]
        result = {}
        for name in names:
            if name == "truncation":
                result["truncation"] = {
                    p: truncation_errors(load_target(p), range(1, 17)) for p in FIG5_PRESETS
                }
                for p, table in result["truncation"].items():
                    print(p, " ".join(f"{k}:{v['mse']:.1e}" for k, v in table.items()))
            else:
                result[name] = run_experiment(name)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
