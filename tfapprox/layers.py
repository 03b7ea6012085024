"""Keras layers of the one-layer, one-head Transformer of Jiang & Li (2024).

The hypothesis space is

    Ĥ_t(x) = F̂( Σ_{s=1..τ} softmax_s[ (W_Q f̂(x(t)))ᵀ (W_K f̂(x(s))) ] · W_V f̂(x(s)) )

with position-encoded tokens x(t) ↦ A x(t) + e(t). The three layers here are
its parts: `PositionEncoding` (A, e), `FeedForward` (f̂ and F̂) and
`SingleHeadAttention` (W_Q, W_K, W_V and the softmax mixing). There is no
residual connection, no layer norm and no 1/√m_h scaling unless asked for.

All layers use `keras.ops` only, so they run on every Keras backend, and are
registered for serialisation under the package name ``"tfapprox"``.
"""

import math

import keras
import numpy as np
from keras import ops

from tfapprox._checks import check_bool, check_choice, check_int, check_positive_int
from tfapprox.budget import POSITION_ENCODINGS

_PACKAGE = "tfapprox"


def sinusoidal_encoding(sequence_length, dim):
    """The fixed encoding ``e(t)_{2i} = sin(t / 10000^{2i/d'})``, ``e(t)_{2i+1} = cos(…)``.

    Returns a float32 NumPy array of shape ``(sequence_length, dim)``.

    >>> sinusoidal_encoding(3, 2).astype(float).round(4).tolist()
    [[0.0, 1.0], [0.8415, 0.5403], [0.9093, -0.4161]]
    """
    sequence_length = check_positive_int("sequence_length", sequence_length)
    dim = check_positive_int("dim", dim)
    positions = np.arange(sequence_length, dtype=np.float64)[:, None]
    rates = 1.0 / 10000.0 ** (2.0 * (np.arange(dim) // 2) / dim)
    angles = positions * rates[None, :]
    encoding = np.where(np.arange(dim) % 2 == 0, np.sin(angles), np.cos(angles))
    return encoding.astype(np.float32)


def fresh_initializer(initializer, index=0):
    """A new instance of `initializer` for one weight, so weights draw independent values.

    Keras initializers are stateless: one instance called twice for the same
    shape returns the same values, so a layer that shares one instance
    between W_Q, W_K and W_V (or between the hidden layers of a network)
    starts with equal weights. As `keras.layers.MultiHeadAttention` does, each
    weight gets its own clone ``cls.from_config(initializer.get_config())``:
    an unseeded clone draws a fresh seed (reproducible under
    `keras.utils.set_random_seed`). An integer seed ``s`` becomes ``s +
    index``, so a seeded layer stays reproducible and its weights still
    differ. A `keras.random.SeedGenerator` seed is stateful and advances at
    every draw: such an initializer is shared, not cloned. Initializers
    without a config (plain functions) are returned as they are.

    Args:
        initializer: `keras.initializers.Initializer` or callable.
        index: int. Position of the weight within its layer; offsets an
            integer seed. Defaults to 0.

    Returns:
        An initializer.

    >>> glorot = keras.initializers.GlorotUniform(seed=7)
    >>> fresh_initializer(glorot, 2).get_config()["seed"]
    9
    """
    if not hasattr(initializer, "get_config"):
        return initializer
    if isinstance(getattr(initializer, "seed", None), keras.random.SeedGenerator):
        return initializer
    config = initializer.get_config()
    seed = config.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        config["seed"] = seed + index
    return initializer.__class__.from_config(config)


def _keep_mask(mask, causal, tau):
    """Boolean ``(batch or 1, tau, tau)`` of (query, key) pairs to keep, or None for all.

    ``mask`` is None, ``(batch, tau)`` over the keys or ``(batch, tau, tau)``;
    ``causal`` also drops the keys s > t.
    """
    keep = None
    if mask is not None:
        mask = ops.cast(mask, "bool")
        static_tau = tau if isinstance(tau, int) else None
        if len(mask.shape) not in (2, 3) or any(
            size is not None and static_tau is not None and size != static_tau
            for size in mask.shape[1:]
        ):
            raise ValueError(
                f"`mask` must have shape (batch, tau) or (batch, tau, tau) with tau = "
                f"{static_tau if static_tau is not None else 'the inputs’'}. "
                f"Received mask shape {tuple(mask.shape)}"
            )
        keep = mask[:, None, :] if len(mask.shape) == 2 else mask  # (batch, 1|tau, tau)
    if causal:
        rows = ops.arange(tau)[:, None]
        cols = ops.arange(tau)[None, :]
        lower = (cols <= rows)[None]  # (1, tau, tau)
        keep = lower if keep is None else ops.logical_and(keep, lower)
    return keep


#: Query rows per block of causal attention (`causal_blocks`). Chosen by
#: measurement (`analysis/bench_multihead.py`, 2-core CPU, τ = 128): blocks of
#: 8, 16 and 32 rows ran 0.65–1.30×, 0.97–1.57× and 1.21–1.64× stock.
CAUSAL_BLOCK = 32


def causal_blocks(tau, block):
    """Query blocks ``(start, stop, keys)`` of causal attention over ``tau`` tokens.

    Queries t ∈ [start, stop) attend only to the keys s < ``keys`` = stop:
    the key blocks above the diagonal are masked out entirely, so block-wise
    attention skips them (about half of the τ² logits for long sequences).
    ``stop`` and ``keys`` are None for the last block (to the end).

    >>> causal_blocks(70, 32)
    [(0, 32, 32), (32, 64, 64), (64, None, None)]
    >>> causal_blocks(32, 32)
    [(0, None, None)]
    """
    tau = check_positive_int("tau", tau)
    block = check_positive_int("block", block)
    starts = list(range(0, tau, block))
    return [
        (start, None, None) if start == starts[-1] else (start, start + block, start + block)
        for start in starts
    ]


def _block(keep, rows, keys):
    """``keep`` (batch or 1, 1 or tau, tau) cut to (query ``rows``, ``keys``), or None."""
    if keep is None:
        return None
    if keep.shape[1] != 1:
        keep = keep[:, rows]
    return keep[:, :, keys]


def _attention_block(query, key, value, bias, keep, empty_rows, scale=1.0):
    """Σ_s softmax_s(scale q_t·k_s + bias_ts) v_s over the kept s, ``(batch, rows, H, m_v)``.

    ``query`` (batch, rows, H, m_h), ``key`` (batch, keys, H, m_h), ``value``
    (batch, keys, H, m_v); ``bias`` float32 (1, H, rows, keys) or None;
    ``keep`` boolean (batch or 1, 1, rows, keys) or None; ``scale`` the
    factor on q_t·k_s. With ``empty_rows``, a query with no kept key
    outputs 0.

    Runs the backend's attention kernel, `keras.ops.dot_product_attention`
    (the one `keras.layers.MultiHeadAttention` runs), when m_v = m_h: under
    TensorFlow it trained up to 1.3× faster than the same einsums through
    `keras.ops.einsum` (`analysis/bench_multihead.py`, τ = 32, H = 8), and
    Keras' JAX version of it requires m_v = m_h. Otherwise the same
    computation in einsums.
    """
    if query.shape[-1] == value.shape[-1]:
        out = ops.dot_product_attention(query, key, value, bias=bias, mask=keep, scale=scale)
        if empty_rows and keep is not None:
            has_key = ops.any(keep[:, 0], axis=-1)  # (batch or 1, rows)
            out = out * ops.cast(has_key, out.dtype)[:, :, None, None]
        return out
    scores = ops.cast(ops.einsum("bthk,bshk->bhts", query, key), "float32") * scale
    if bias is not None:
        scores = scores + bias
    if keep is not None:
        scores = ops.where(keep, scores, -1e9)
    weights = ops.softmax(scores, axis=-1)  # (batch, H, rows, keys)
    if empty_rows and keep is not None:
        weights = weights * ops.cast(keep, weights.dtype)
    return ops.einsum("bhts,bshv->bthv", ops.cast(weights, value.dtype), value)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PositionEncoding(keras.layers.Layer):
    """Position encoding of the tokens: ``x(t) ↦ A x(t) + e(t)``.

    Jiang & Li (2024), Sec. 3: the theory needs only that tokens at different
    positions land in disjoint sets; without an encoding the model is
    permutation-equivariant.

    Args:
        sequence_length: int. τ, the number of positions.
        mode: str. ``"learned"`` (e(t) trainable), ``"sinusoidal"`` (fixed
            sines and cosines) or ``"none"`` (e = 0). Defaults to
            ``"learned"``.
        projection_dim: int or None. Width d' of a learned linear map
            A ∈ R^{d'×d} applied before adding e(t); None means A = I and
            d' = d. Defaults to None.
        embeddings_initializer: Initializer of the learned e(t). Defaults to
            uniform on [-1, 1], which spreads positions apart at the start.
        kernel_initializer: Initializer of A. Defaults to ``"glorot_uniform"``.
        **kwargs: Base layer keyword arguments, such as ``name`` and ``dtype``.

    Call arguments:
        inputs: Tensor of shape ``(batch, tau, d)``.

    Returns:
        Tensor of shape ``(batch, tau, d')``.

    Example:

    >>> layer = PositionEncoding(4, mode="sinusoidal", projection_dim=8)
    >>> tuple(layer(np.zeros((2, 4, 3))).shape)
    (2, 4, 8)
    """

    def __init__(
        self,
        sequence_length,
        mode="learned",
        projection_dim=None,
        embeddings_initializer=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sequence_length = check_positive_int("sequence_length", sequence_length)
        self.mode = check_choice("mode", mode, POSITION_ENCODINGS)
        self.projection_dim = check_positive_int("projection_dim", projection_dim, allow_none=True)
        if embeddings_initializer is None:
            embeddings_initializer = keras.initializers.RandomUniform(-1.0, 1.0)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"PositionEncoding expects inputs of shape (batch, tau, d). "
                f"Received input_shape={input_shape}"
            )
        tau, input_dim = input_shape[1], input_shape[2]
        if tau is not None and tau > self.sequence_length:
            raise ValueError(
                f"Inputs have {tau} positions but `sequence_length` is {self.sequence_length}"
            )
        if input_dim is None:
            raise ValueError("The token dimension d (last axis of the input) must be known")
        self.input_spec = keras.InputSpec(ndim=3, axes={-1: input_dim})
        embed_dim = self.projection_dim or input_dim
        self.kernel = None
        if self.projection_dim is not None:
            self.kernel = self.add_weight(
                name="kernel",
                shape=(input_dim, self.projection_dim),
                initializer=fresh_initializer(self.kernel_initializer, 0),
            )
        self.embeddings = None
        if self.mode == "learned":
            self.embeddings = self.add_weight(
                name="embeddings",
                shape=(self.sequence_length, embed_dim),
                initializer=fresh_initializer(self.embeddings_initializer, 1),
            )
        elif self.mode == "sinusoidal":
            self._sinusoids = sinusoidal_encoding(self.sequence_length, embed_dim)

    def call(self, inputs):
        tau = inputs.shape[1]
        if tau is not None and tau > self.sequence_length:
            raise ValueError(
                f"Inputs have {tau} positions but `sequence_length` is {self.sequence_length}"
            )
        hidden = inputs
        if self.kernel is not None:
            hidden = ops.matmul(hidden, self.kernel)  # (batch, tau, d')
        if self.mode == "none":
            return hidden
        tau = ops.shape(hidden)[1]
        if self.mode == "learned":
            encoding = self.embeddings
        else:
            encoding = ops.convert_to_tensor(self._sinusoids, dtype=self.compute_dtype)
        return hidden + ops.cast(encoding[:tau], hidden.dtype)[None]  # (batch, tau, d')

    def compute_output_shape(self, input_shape):
        embed_dim = self.projection_dim or input_shape[-1]
        return (*input_shape[:-1], embed_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "mode": self.mode,
                "projection_dim": self.projection_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FeedForward(keras.layers.Layer):
    """Token-wise feed-forward network: f̂ (R^d → R^n) or F̂ (R^{m_v} → R^{d_out}).

    ``FF(z) = W_{L+1} σ(W_L … σ(W_1 z + b_1) … + b_L) + b_{L+1}`` with ``L =
    depth`` hidden layers of width ``hidden_dim`` (m_FF), applied to every
    token independently. Jiang & Li (2024) fix the depth and vary the width:
    their rate C_α m_FF^{−α} is in the width.

    Args:
        hidden_dim: int. Width m_FF of every hidden layer.
        output_dim: int. Output width (n for f̂, d_out for F̂).
        depth: int. Number of hidden layers. Defaults to 3.
        activation: Activation of the hidden layers. Defaults to ``"relu"``.
        output_activation: Activation of the output layer. Defaults to None
            (linear).
        kernel_initializer: Defaults to ``"glorot_uniform"``.
        bias_initializer: Defaults to ``"zeros"``.
        kink_initializer: Initializer or None. With one, it draws a point
            ``c_j`` (shape ``(hidden_dim, input_dim)``) for each unit of the
            first hidden layer, and that unit's bias becomes ``b_1j =
            −w_1jᵀ c_j``, so its kink ``{z : w_1jᵀ z + b_1j = 0}`` passes
            through ``c_j``. With zero biases every first-layer kink passes
            through 0: on inputs of one sign (tokens in [0, 1]) each unit is
            then linear and the network starts as a linear function, which
            training must first bend. Kinks spread over the inputs' range
            (e.g. ``RandomUniform(0, 1)``) start it piecewise linear there.
            Defaults to None (``bias_initializer``'s biases).
        **kwargs: Base layer keyword arguments, such as ``name`` and ``dtype``.

    Call arguments:
        inputs: Tensor of shape ``(..., input_dim)``.

    Returns:
        Tensor of shape ``(..., output_dim)``.

    Example:

    >>> ff = FeedForward(hidden_dim=16, output_dim=4, depth=2)
    >>> tuple(ff(np.zeros((2, 5, 3))).shape)
    (2, 5, 4)
    >>> ff.count_params()  # (3+1)·16 + (16+1)·16 + (16+1)·4
    404

    Kinks drawn over [0, 1] (one input): unit j bends at ``c_j = −b_j / w_j``.

    >>> kinks_over_01 = keras.initializers.RandomUniform(0, 1, seed=3)
    >>> ff = FeedForward(8, 1, depth=1, kink_initializer=kinks_over_01)
    >>> ff.build((None, 1))
    >>> kernel, bias = (np.asarray(w) for w in ff.hidden_layers[0].weights)
    >>> kinks = -bias / kernel[0]
    >>> bool(np.all((kinks >= 0) & (kinks <= 1)))
    True
    """

    def __init__(
        self,
        hidden_dim,
        output_dim,
        depth=3,
        activation="relu",
        output_activation=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kink_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.depth = check_positive_int("depth", depth)
        self.activation = keras.activations.get(activation)
        self.output_activation = keras.activations.get(output_activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kink_initializer = (
            None if kink_initializer is None else keras.initializers.get(kink_initializer)
        )
        # One clone of each initializer per sublayer (`fresh_initializer`):
        # a shared instance would give hidden layers 2..depth equal kernels.
        self.hidden_layers = [
            keras.layers.Dense(
                self.hidden_dim,
                activation=self.activation,
                name=f"hidden_{i}",
                **self._dense_kwargs(i),
            )
            for i in range(self.depth)
        ]
        self.output_layer = keras.layers.Dense(
            self.output_dim,
            activation=self.output_activation,
            name="output",
            **self._dense_kwargs(self.depth),
        )

    def _dense_kwargs(self, index):
        return dict(
            kernel_initializer=fresh_initializer(self.kernel_initializer, index),
            bias_initializer=fresh_initializer(self.bias_initializer, index),
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.output_layer.build(shape)
        if self.kink_initializer is not None:
            first = self.hidden_layers[0]
            points = fresh_initializer(self.kink_initializer, self.depth + 1)(
                (self.hidden_dim, input_shape[-1]), dtype=first.kernel.dtype
            )  # (m_FF, d): c_j
            # b_j = −w_jᵀ c_j with w_j the j-th column of the (d, m_FF) kernel.
            first.bias.assign(-ops.sum(ops.transpose(first.kernel) * points, axis=-1))

    def call(self, inputs):
        hidden = inputs
        for layer in self.hidden_layers:
            hidden = layer(hidden)  # (..., m_FF)
        return self.output_layer(hidden)  # (..., output_dim)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "output_dim": self.output_dim,
                "depth": self.depth,
                "activation": keras.activations.serialize(self.activation),
                "output_activation": keras.activations.serialize(self.output_activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kink_initializer": (
                    None
                    if self.kink_initializer is None
                    else keras.initializers.serialize(self.kink_initializer)
                ),
            }
        )
        return config


class _SelfAttention(keras.layers.Layer):
    """What the attention layers share: the input check, key-mask propagation and the scale."""

    @property
    def logit_scale(self):
        """The factor on q_tᵀ k_s: 1/√m_h with ``use_scale``, else 1."""
        return 1.0 / math.sqrt(self.key_dim) if self.use_scale else 1.0

    def _input_width(self, input_shape):
        """n, the width of ``(batch, tau, n)`` inputs, or a clear error."""
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, tau, n) with n known. "
                f"Received input_shape={input_shape}"
            )
        # Later calls must keep n: Keras then names the layer and the shape.
        self.input_spec = keras.InputSpec(ndim=3, axes={-1: input_shape[-1]})
        return input_shape[-1]

    def compute_mask(self, inputs, mask=None):
        if mask is None or len(mask.shape) != 2:
            return None
        return mask

    def _logits_shape(self, batch, tau):
        return (batch, tau, tau)

    def compute_output_spec(self, inputs, mask=None, return_attention_logits=False):
        output = keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=self.compute_dtype
        )
        if not return_attention_logits:
            return output
        logits_shape = self._logits_shape(inputs.shape[0], inputs.shape[1])
        return output, keras.KerasTensor(logits_shape, dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SingleHeadAttention(_SelfAttention):
    """Dot-product self-attention with independent widths m_h and m_v.

    ``out_t = Σ_s softmax_s(ρ̂_ts) v_s`` with ``ρ̂_ts = q_tᵀ k_s``,
    ``q_t = W_Q h_t``, ``k_s = W_K h_s``, ``v_s = W_V h_s`` and
    W_Q, W_K ∈ R^{m_h×n}, W_V ∈ R^{m_v×n} (Jiang & Li 2024, Eq. 3). The
    pre-softmax matrix ρ̂ has rank ≤ m_h: that rank budget is what ``key_dim``
    buys. No biases and no 1/√m_h scaling (unless ``use_scale=True``); the
    attention is over the whole sequence unless ``causal=True``. The softmax
    runs in float32 under a mixed-precision policy.

    Args:
        key_dim: int. m_h, the query/key width.
        value_dim: int or None. m_v, the value width. Defaults to the input
            width n.
        use_scale: bool. Multiply ρ̂ by 1/√m_h. Defaults to False (as in the
            paper).
        causal: bool. Let token t attend only to s ≤ t. Defaults to False.
        kernel_initializer: Initializer of W_Q, W_K, W_V. Defaults to
            ``"glorot_uniform"``.
        **kwargs: Base layer keyword arguments, such as ``name`` and ``dtype``.

    Call arguments:
        inputs: Tensor of shape ``(batch, tau, n)``.
        mask: Optional boolean mask, ``(batch, tau)`` over the keys or
            ``(batch, tau, tau)`` over (query, key) pairs; True means attend.
        return_attention_logits: bool. Also return ρ̂ (after scaling, before
            masking and softmax). Works inside jit-compiled models.

    Returns:
        Tensor ``(batch, tau, m_v)``, or the tuple ``(output, logits)`` with
        logits of shape ``(batch, tau, tau)``.

    Example:

    >>> attention = SingleHeadAttention(key_dim=2, value_dim=3)
    >>> out, logits = attention(np.ones((1, 4, 5)), return_attention_logits=True)
    >>> tuple(out.shape), tuple(logits.shape)
    ((1, 4, 3), (1, 4, 4))
    """

    def __init__(
        self,
        key_dim,
        value_dim=None,
        use_scale=False,
        causal=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.key_dim = check_positive_int("key_dim", key_dim)
        self.value_dim = check_positive_int("value_dim", value_dim, allow_none=True)
        self.use_scale = check_bool("use_scale", use_scale)
        self.causal = check_bool("causal", causal)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        width = self._input_width(input_shape)
        # One clone of the initializer per kernel (`fresh_initializer`): a
        # shared instance would start with W_Q = W_K (and = W_V if m_v = m_h).
        self.query_kernel = self.add_weight(
            name="query_kernel",
            shape=(width, self.key_dim),
            initializer=fresh_initializer(self.kernel_initializer, 0),
        )
        self.key_kernel = self.add_weight(
            name="key_kernel",
            shape=(width, self.key_dim),
            initializer=fresh_initializer(self.kernel_initializer, 1),
        )
        self.value_kernel = self.add_weight(
            name="value_kernel",
            shape=(width, self.value_dim or width),
            initializer=fresh_initializer(self.kernel_initializer, 2),
        )

    def project(self, inputs):
        """Queries, keys and values ``(q, k, v)`` of ``inputs`` (batch, tau, n).

        One matmul with the concatenated kernel [W_Q | W_K | W_V], then split.
        """
        kernel = ops.concatenate([self.query_kernel, self.key_kernel, self.value_kernel], axis=1)
        qkv = ops.matmul(inputs, kernel)  # (batch, tau, 2 m_h + m_v)
        m_h = self.key_kernel.shape[-1]
        return qkv[..., :m_h], qkv[..., m_h : 2 * m_h], qkv[..., 2 * m_h :]

    def call(self, inputs, mask=None, return_attention_logits=False):
        query, key, value = self.project(inputs)  # (batch, tau, m_h), (…, m_h), (…, m_v)
        logits = ops.matmul(query, ops.transpose(key, (0, 2, 1)))  # (batch, tau, tau)
        if self.use_scale:
            logits = logits * ops.cast(self.logit_scale, logits.dtype)
        scores = ops.cast(logits, "float32")
        keep = self._attention_mask(inputs, mask)
        if keep is not None:
            scores = ops.where(keep, scores, ops.full_like(scores, -1e9))
        weights = ops.cast(ops.softmax(scores, axis=-1), value.dtype)  # (batch, tau, tau)
        outputs = ops.matmul(weights, value)  # (batch, tau, m_v)
        if return_attention_logits:
            return outputs, logits
        return outputs

    def _attention_mask(self, inputs, mask):
        """Boolean (batch or 1, tau, tau) of pairs to keep, or None for all."""
        return _keep_mask(mask, self.causal, ops.shape(inputs)[1])

    def compute_output_shape(self, input_shape):
        value_dim = self.value_dim or input_shape[-1]
        return (*input_shape[:-1], value_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "use_scale": self.use_scale,
                "causal": self.causal,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


RELATIVE_POSITIONS = ("none", "linear", "log", "t5")


def t5_relative_position_bucket(
    relative_position, bidirectional=True, num_buckets=32, max_distance=128
):
    """T5's bucket of a relative position ``s − t`` (key minus query), with `keras.ops`.

    Raffel et al. (2020), the ``relative_position_bucket`` of T5 (Mesh
    TensorFlow and Hugging Face): with ``bidirectional`` half the buckets hold
    keys after the query (s > t) and half keys at or before it; without it
    (causal) keys after the query share bucket 0 with the current token. In
    each half of B buckets the distance z = |s − t| has its own bucket up to
    ``B/2`` (exact), then ``B/2 + ⌊log(z/(B/2)) / log(max_distance/(B/2)) ·
    B/2⌋`` (logarithmic), capped at ``B − 1`` (constant beyond about
    ``max_distance``).

    Args:
        relative_position: int tensor or array of ``s − t``.
        bidirectional: bool. Separate buckets for s > t. Defaults to True.
        num_buckets: int. Defaults to 32.
        max_distance: int. Defaults to 128.

    Returns:
        int32 tensor of buckets in ``[0, num_buckets)``, the shape of the input.

    Example:

    >>> z = np.array([-200, -20, -3, 0, 3, 20, 200])
    >>> ops.convert_to_numpy(t5_relative_position_bucket(z, num_buckets=8, max_distance=16)).tolist()
    [3, 3, 2, 0, 6, 7, 7]
    """
    # Two buckets per direction at least (exact and logarithmic), and a
    # positive distance where the logarithmic buckets end.
    check_int("num_buckets", num_buckets, minimum=4 if bidirectional else 2)
    check_positive_int("max_distance", max_distance)
    relative_position = ops.cast(relative_position, "int32")
    buckets = ops.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + ops.cast(relative_position > 0, "int32") * num_buckets
        distance = ops.abs(relative_position)
    else:
        distance = -ops.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    # Clipped below at 1 so the logarithm stays finite where it is not used.
    scaled = ops.log(ops.cast(ops.maximum(distance, 1), "float32") / max_exact) / math.log(
        max_distance / max_exact
    )
    large = max_exact + ops.cast(scaled * (num_buckets - max_exact), "int32")
    large = ops.minimum(large, num_buckets - 1)
    return buckets + ops.where(distance < max_exact, distance, large)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MultiHeadAttention(_SelfAttention):
    """Multi-head self-attention with relative position encodings (Wang & E, 2024).

    ``Attn(X)_t = W_O Σ_h Σ_s softmax_s(⟨W_Q^h x_t, W_K^h x_s⟩ + p_h φ(t − s)) W_V^h x_s``

    the attention of Wang & E (NeurIPS 2024, Eq. 2), over s ≤ t when
    ``causal`` and over all s otherwise (then φ is applied to the distance
    |t − s|). Per head h, W_Q^h, W_K^h ∈ R^{m_h×n} and W_V^h ∈ R^{m_v×n};
    W_O ∈ R^{output_dim×H m_v}. The relative position encoding (RPE) is

    - ``"linear"``: φ(z) = −z, geometric (ALiBi-like) weights e^{−p_h z};
    - ``"log"``: φ(z) = −log z for z ≥ 1; the current token (z = 0) is
      excluded (masked out), giving power-law weights z^{−p_h}. A query
      with no admissible key (the first position when causal) outputs 0;
    - ``"t5"``: T5's bucketed form, a learned scalar per head and bucket
      (`t5_relative_position_bucket`) in place of p_h φ;
    - ``"none"``: no position bias.

    p_h > 0 is kept positive by the parameterisation ``p_h = softplus(r_h) =
    log(1 + e^{r_h})`` of a trainable raw weight r_h (``position_weights``);
    `position_scales` returns p_h. With ``use_dot_product=False`` (DP-free)
    W_Q and W_K do not exist and the weights come from the RPE alone.

    Differences from `keras.layers.MultiHeadAttention`: no 1/√m_h scaling of
    the logits unless ``use_scale``, no biases, no dropout, the relative
    position bias above, the DP-free option and an optional W_O
    (``output_projection=False`` returns the H heads concatenated, width
    H·m_v, as paper A's one-head model does). Self-attention only. The
    softmax runs in float32 under mixed precision.
    Causal attention runs block by block (`causal_blocks`, `CAUSAL_BLOCK`
    query rows at a time), skipping the key blocks above the diagonal: for
    τ = 128 that is 3/8 of the logits, and the layer trains 1.1–1.7× as fast
    as the stock layer (`analysis/bench_multihead.py`).

    Args:
        num_heads: int. H, the number of heads.
        key_dim: int or None. m_h, the per-head query/key width. Required
            with the dot product; unused without it. Defaults to None.
        value_dim: int or None. m_v, the per-head value width. Defaults to
            the input width n.
        output_dim: int or None. Output width of W_O. Defaults to the input
            width n.
        output_projection: bool. Apply W_O; False returns the heads
            concatenated (``output_dim`` must then be None). Defaults to True.
        causal: bool. Let token t attend only to s ≤ t. Defaults to False.
        use_dot_product: bool. Include ⟨W_Q^h x_t, W_K^h x_s⟩. Defaults to
            True.
        use_scale: bool. Multiply the dot product by 1/√m_h, as
            `keras.layers.MultiHeadAttention` does. Defaults to False (as in
            paper B).
        relative_position: str. ``"none"``, ``"linear"``, ``"log"`` or
            ``"t5"``. Defaults to ``"none"``.
        num_buckets: int. T5 buckets (``"t5"`` only). Defaults to 32.
        max_distance: int. T5's distance beyond which the bucket is constant
            (``"t5"`` only). Defaults to 128.
        kernel_initializer: Initializer of W_Q, W_K, W_V, W_O. Defaults to
            ``"glorot_uniform"``.
        position_initializer: Initializer of the raw weights r_h (linear,
            log) or of the T5 table. Defaults to uniform on [−1, 1] (p_h
            between 0.31 and 1.31).
        **kwargs: Base layer keyword arguments, such as ``name`` and ``dtype``.

    Call arguments:
        inputs: Tensor of shape ``(batch, tau, n)``.
        mask: Optional boolean mask, ``(batch, tau)`` over the keys or
            ``(batch, tau, tau)`` over (query, key) pairs; True means attend.
        return_attention_logits: bool. Also return the per-head logits
            ``⟨W_Q^h x_t, W_K^h x_s⟩ (/√m_h with use_scale) + p_h φ(t − s)``
            before masking and softmax (the bias is 0 at the log type's
            excluded z = 0; the dot product is 0 when DP-free). Works inside
            jit-compiled models.

    Returns:
        Tensor ``(batch, tau, output_dim)`` (``(batch, tau, H·m_v)`` without
        W_O), or the tuple ``(output, logits)`` with logits of shape
        ``(batch, H, tau, tau)``.

    Example:

    >>> attention = MultiHeadAttention(num_heads=2, key_dim=3, relative_position="linear")
    >>> out, logits = attention(np.ones((1, 4, 5)), return_attention_logits=True)
    >>> tuple(out.shape), tuple(logits.shape)
    ((1, 4, 5), (1, 2, 4, 4))
    >>> free = MultiHeadAttention(num_heads=2, use_dot_product=False, relative_position="log")
    >>> _ = free.build((None, 4, 5))
    >>> [tuple(w.shape) for w in free.weights]  # W_V, W_O, r_h
    [(5, 2, 5), (2, 5, 5), (2,)]
    """

    def __init__(
        self,
        num_heads,
        key_dim=None,
        value_dim=None,
        output_dim=None,
        output_projection=True,
        causal=False,
        use_dot_product=True,
        use_scale=False,
        relative_position="none",
        num_buckets=32,
        max_distance=128,
        kernel_initializer="glorot_uniform",
        position_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.use_dot_product = check_bool("use_dot_product", use_dot_product)
        self.key_dim = check_positive_int("key_dim", key_dim, allow_none=not self.use_dot_product)
        self.value_dim = check_positive_int("value_dim", value_dim, allow_none=True)
        self.output_projection = check_bool("output_projection", output_projection)
        self.output_dim = check_positive_int("output_dim", output_dim, allow_none=True)
        if not self.output_projection and self.output_dim is not None:
            raise ValueError(
                "`output_dim` needs the output projection W_O. Received: "
                f"output_dim={output_dim}, output_projection=False"
            )
        self.causal = check_bool("causal", causal)
        self.use_scale = check_bool("use_scale", use_scale)
        if self.use_scale and not self.use_dot_product:
            raise ValueError(
                "`use_scale` scales the dot product, which a DP-free layer does not have. "
                "Received: use_scale=True, use_dot_product=False"
            )
        self.relative_position = check_choice(
            "relative_position", relative_position, RELATIVE_POSITIONS
        )
        self.num_buckets = check_int("num_buckets", num_buckets, minimum=2)
        self.max_distance = check_int("max_distance", max_distance, minimum=2)
        exact = self.num_buckets // (2 if self.causal else 4)  # T5's exact buckets per side
        if self.relative_position == "t5" and exact < 1:
            raise ValueError(
                "`num_buckets` must be at least 4 when not causal (2 when causal), so that "
                f"T5 has an exact bucket. Received: num_buckets={num_buckets}, "
                f"causal={self.causal}"
            )
        if self.relative_position == "t5" and self.max_distance <= exact:
            raise ValueError(
                "`max_distance` must exceed the exact buckets (num_buckets/2, halved again "
                f"when not causal). Received: max_distance={max_distance}, "
                f"num_buckets={num_buckets}"
            )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if position_initializer is None:
            position_initializer = keras.initializers.RandomUniform(-1.0, 1.0)
        self.position_initializer = keras.initializers.get(position_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        width = self._input_width(input_shape)
        heads, value_dim = self.num_heads, self.value_dim or width

        def kernel(name, shape, index):
            return self.add_weight(
                name=name,
                shape=shape,
                initializer=fresh_initializer(self.kernel_initializer, index),
            )

        # One clone of the initializer per weight (`fresh_initializer`).
        self.query_kernel = self.key_kernel = None
        if self.use_dot_product:
            self.query_kernel = kernel("query_kernel", (width, heads, self.key_dim), 0)
            self.key_kernel = kernel("key_kernel", (width, heads, self.key_dim), 1)
        self.value_kernel = kernel("value_kernel", (width, heads, value_dim), 2)
        self.output_kernel = None
        if self.output_projection:
            self.output_kernel = kernel(
                "output_kernel", (heads, value_dim, self.output_dim or width), 3
            )
        self.position_weights = None
        if self.relative_position != "none":
            shape = (self.num_buckets, heads) if self.relative_position == "t5" else (heads,)
            self.position_weights = self.add_weight(
                name="position_weights",
                shape=shape,
                initializer=fresh_initializer(self.position_initializer, 4),
            )

    @property
    def position_scales(self):
        """p_h = softplus(r_h) > 0, shape ``(num_heads,)`` (linear and log RPE only)."""
        if self.relative_position not in ("linear", "log"):
            raise ValueError(
                "Only the linear and log RPE have scales p_h. Received: "
                f"relative_position={self.relative_position!r}"
            )
        return ops.softplus(ops.cast(self.position_weights, "float32"))

    def position_bias(self, tau):
        """The RPE bias ``p_h φ(t − s)`` and the pairs it admits, for ``tau`` positions.

        Returns:
            ``(bias, keep)``: float32 ``(num_heads, tau, tau)`` or None (no
            RPE), and boolean ``(tau, tau)`` or None (every pair admitted).
            ``keep`` is False at z = 0 for the log type; the bias there is 0.
        """
        if self.relative_position == "none":
            return None, None
        positions = ops.arange(tau)
        relative = positions[None, :] - positions[:, None]  # s − t, (tau, tau)
        if self.relative_position == "t5":
            buckets = t5_relative_position_bucket(
                relative, not self.causal, self.num_buckets, self.max_distance
            )  # (tau, tau)
            table = ops.cast(self.position_weights, "float32")  # (buckets, H)
            bias = ops.transpose(ops.take(table, buckets, axis=0), (2, 0, 1))  # (H, tau, tau)
            return bias, None
        distance = ops.cast(ops.abs(relative), "float32")  # z = |t − s|, (tau, tau)
        keep = None
        if self.relative_position == "linear":
            phi = -distance
        else:
            phi = -ops.log(ops.maximum(distance, 1.0))
            keep = distance >= 1.0
        bias = self.position_scales[:, None, None] * phi[None]  # (H, tau, tau)
        return bias, keep

    def project(self, inputs):
        """Per-head queries, keys and values ``(q, k, v)`` of ``inputs`` (batch, tau, n).

        Three independent einsums in the order q, k, v, as
        `keras.layers.MultiHeadAttention` does (`analysis/bench_multihead.py`:
        faster at τ = 128 than one matmul with the concatenated kernel
        [W_Q | W_K | W_V] and slices of its result; and at τ = 32, n = 64,
        H = 8 the order v, q, k trained 7% slower than q, k, v, the same
        work scheduled differently). q and k are None when DP-free. Shapes
        ``(batch, tau, H, m_h)`` and ``(batch, tau, H, m_v)``.
        """
        query = key = None
        if self.use_dot_product:
            query = ops.einsum("btn,nhk->bthk", inputs, self.query_kernel)
            key = ops.einsum("btn,nhk->bthk", inputs, self.key_kernel)
        value = ops.einsum("btn,nhv->bthv", inputs, self.value_kernel)
        return query, key, value

    def call(self, inputs, mask=None, return_attention_logits=False):
        query, key, value = self.project(inputs)  # (batch, tau, H, m_h) twice, (…, m_v)
        tau = ops.shape(inputs)[1]
        bias, position_keep = self.position_bias(tau)  # (H, tau, tau), (tau, tau)
        # The (query, key) pairs to keep that do not depend on the batch: the
        # causal mask and the log type's z = 0.
        static_keep = _keep_mask(None, self.causal, tau)  # (1, tau, tau)
        if position_keep is not None:
            static_keep = (
                position_keep[None]
                if static_keep is None
                else ops.logical_and(static_keep, position_keep)
            )
        user_keep = None if mask is None else _keep_mask(mask, False, tau)  # (batch, 1|tau, tau)
        # A query with no admissible key (the first token under the log RPE)
        # would otherwise average all keys uniformly: it outputs 0.
        empty_rows = mask is not None or position_keep is not None
        if self.use_dot_product:
            outputs = self._dot_product_attention(
                query, key, value, bias, static_keep, user_keep, empty_rows
            )
        else:
            outputs = self._position_attention(value, bias, static_keep, user_keep, empty_rows)
        if self.output_kernel is not None:
            outputs = ops.einsum("bthv,hvo->bto", outputs, self.output_kernel)  # (batch, tau, out)
        else:
            batch = ops.shape(inputs)[0]
            outputs = ops.reshape(outputs, (batch, tau, -1))  # (batch, tau, H m_v)
        if return_attention_logits:
            batch = ops.shape(inputs)[0]
            if self.use_dot_product:
                logits = ops.cast(ops.einsum("bthk,bshk->bhts", query, key), "float32")
                logits = logits * self.logit_scale
            else:
                logits = ops.zeros((1, self.num_heads, tau, tau))
            if bias is not None:
                logits = logits + bias[None]
            logits = ops.broadcast_to(logits, (batch, self.num_heads, tau, tau))
            return outputs, ops.cast(logits, self.compute_dtype)
        return outputs

    def _dot_product_attention(self, query, key, value, bias, static_keep, user_keep, empty_rows):
        """Σ_s softmax_s(`logit_scale` q_t·k_s + bias) v_s per head, ``(batch, tau, H, m_v)``.

        When causal, the queries go in blocks of `CAUSAL_BLOCK` rows
        (`causal_blocks`) and block [a, b) meets only the keys s < b: the key
        blocks above the diagonal, which the causal mask would zero, are
        never computed. Each block runs `_attention_block`.
        """
        tau = query.shape[1]
        blocks = [(0, None, None)]
        if self.causal and tau is not None:
            blocks = causal_blocks(tau, CAUSAL_BLOCK)
        outputs = []
        for start, stop, keys in blocks:
            rows, keys = slice(start, stop), slice(0, keys)
            keep = _block(static_keep, rows, keys)
            if user_keep is not None:
                block_user = _block(user_keep, rows, keys)
                keep = block_user if keep is None else ops.logical_and(keep, block_user)
            outputs.append(
                _attention_block(
                    query[:, rows],
                    key[:, keys],
                    value[:, keys],
                    None if bias is None else bias[None, :, rows, keys],
                    None if keep is None else keep[:, None],
                    empty_rows,
                    self.logit_scale,
                )
            )
        return outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, axis=1)

    def _position_attention(self, value, bias, static_keep, user_keep, empty_rows):
        """DP-free attention, ``(batch, tau, H, m_v)``: the weights depend on t − s only.

        Without a user mask the softmax runs once, on ``(1, H, tau, tau)``,
        not per batch element.
        """
        tau, heads = ops.shape(value)[1], self.num_heads
        scores = ops.zeros((tau, tau)) if bias is None else bias
        if static_keep is not None:
            scores = scores + ops.where(static_keep, 0.0, -1e9)  # (H or 1, tau, tau)
        scores = ops.broadcast_to(scores, (1, heads, tau, tau))
        keep = static_keep
        if user_keep is not None:
            scores = ops.where(user_keep[:, None], scores, -1e9)  # (batch, H, tau, tau)
            keep = user_keep if keep is None else ops.logical_and(user_keep, keep)
        weights = ops.softmax(scores, axis=-1)  # (batch or 1, H, tau, tau)
        if empty_rows:
            weights = weights * ops.cast(keep, weights.dtype)[:, None]
        weights = ops.cast(weights, value.dtype)
        if weights.shape[0] == 1:
            return ops.einsum("hts,bshv->bthv", weights[0], value)
        return ops.einsum("bhts,bshv->bthv", weights, value)

    def compute_output_shape(self, input_shape):
        width = input_shape[-1]
        if self.output_projection:
            return (*input_shape[:-1], self.output_dim or width)
        return (*input_shape[:-1], self.num_heads * (self.value_dim or width))

    def _logits_shape(self, batch, tau):
        return (batch, self.num_heads, tau, tau)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "output_dim": self.output_dim,
                "output_projection": self.output_projection,
                "causal": self.causal,
                "use_dot_product": self.use_dot_product,
                "use_scale": self.use_scale,
                "relative_position": self.relative_position,
                "num_buckets": self.num_buckets,
                "max_distance": self.max_distance,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "position_initializer": keras.initializers.serialize(self.position_initializer),
            }
        )
        return config


TEMPORAL_PADDINGS = ("causal", "same")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TemporalConv(keras.layers.Layer):
    """Learnable 1-D convolution over time: ``y(t) = Σ_j W_j x(t + j − left) + b``.

    Jiang & Li (2024), Sec. 6: a temporal mixing ``H̃_t(x) = H_t(θ * x)``
    changes the POD spectrum of the attention kernel, and the paper suggests
    undoing it (de-convolution) as future work. Put in front of the
    Transformer, this layer can learn θ (or its inverse) so the attention sees
    unmixed tokens.

    Zero padding of the time axis keeps τ: ``"causal"`` pads ``left = k − 1``
    positions before the start (``y(t)`` depends on ``x(t−k+1), …, x(t)``;
    ``W_{k−1}`` multiplies the current token), ``"same"`` pads
    ``left = (k − 1) // 2`` before and ``k // 2`` after.

    Args:
        kernel_size: int. k, the number of time steps mixed.
        filters: int or None. Output width; None keeps the input width d.
            Defaults to None.
        padding: str. ``"causal"`` or ``"same"``. Defaults to ``"causal"``.
        use_bias: bool. Add a bias b. Defaults to False.
        kernel_initializer: Initializer of W (shape ``(k, d, filters)``), or
            None for the identity filter (``W = I`` at the current token, 0
            elsewhere; needs ``filters`` None or d), so the layer starts as a
            no-op. Defaults to None.
        bias_initializer: Defaults to ``"zeros"``.
        **kwargs: Base layer keyword arguments, such as ``name`` and ``dtype``.

    Call arguments:
        inputs: Tensor of shape ``(batch, tau, d)``.

    Returns:
        Tensor of shape ``(batch, tau, filters)``.

    Example:

    >>> layer = TemporalConv(3)
    >>> x = np.arange(8.0, dtype="float32").reshape(1, 4, 2)
    >>> bool(np.allclose(layer(x), x))  # the identity filter at the start
    True
    >>> tuple(TemporalConv(2, filters=5, kernel_initializer="ones")(x).shape)
    (1, 4, 5)
    """

    def __init__(
        self,
        kernel_size,
        filters=None,
        padding="causal",
        use_bias=False,
        kernel_initializer=None,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.filters = check_positive_int("filters", filters, allow_none=True)
        self.padding = check_choice("padding", padding, TEMPORAL_PADDINGS)
        self.use_bias = check_bool("use_bias", use_bias)
        self.kernel_initializer = (
            None if kernel_initializer is None else keras.initializers.get(kernel_initializer)
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @property
    def pads(self):
        """``(left, right)``: zero positions added before and after the sequence."""
        if self.padding == "causal":
            return self.kernel_size - 1, 0
        return (self.kernel_size - 1) // 2, self.kernel_size // 2

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "TemporalConv expects inputs of shape (batch, tau, d) with d known. "
                f"Received input_shape={input_shape}"
            )
        input_dim = input_shape[-1]
        filters = self.filters or input_dim
        if self.kernel_initializer is None:
            if filters != input_dim:
                raise ValueError(
                    "The identity initialisation (kernel_initializer=None) needs filters == d. "
                    f"Received: filters={self.filters}, d={input_dim}"
                )
            delta = np.zeros((self.kernel_size, input_dim, filters), dtype="float32")
            delta[self.pads[0]] = np.eye(input_dim, dtype="float32")
            initializer = keras.initializers.Constant(delta)
        else:
            initializer = fresh_initializer(self.kernel_initializer, 0)
        self.kernel = self.add_weight(
            name="kernel", shape=(self.kernel_size, input_dim, filters), initializer=initializer
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(filters,),
                initializer=fresh_initializer(self.bias_initializer, 1),
            )

    def call(self, inputs):
        left, right = self.pads
        padded = ops.pad(inputs, ((0, 0), (left, right), (0, 0)))  # (batch, tau + k − 1, d)
        outputs = ops.conv(padded, self.kernel, strides=1, padding="valid")  # (batch, tau, filters)
        if self.bias is not None:
            outputs = outputs + self.bias
        return outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters or input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kernel_size": self.kernel_size,
                "filters": self.filters,
                "padding": self.padding,
                "use_bias": self.use_bias,
                "kernel_initializer": None
                if self.kernel_initializer is None
                else keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
