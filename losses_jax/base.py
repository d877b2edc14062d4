"""The ``Loss`` base class, ``LossFunctionWrapper`` and the one shared reduction.

Every loss in the library is a per-sample function plus a :class:`Loss` subclass that names it
(``function = huber``), takes the function's options in a real ``__init__`` signature, validates
them once and stores them as read-only attributes. Calling the instance calls the function with
those options and hands the result to :func:`reduce_weighted_values`: sample weighting, masking
and reduction are written once, here.

Reductions and their divisors (Keras 3's, exactly)::

    "sum"                      sum(w * loss)
    "sum_over_batch_size"      sum(w * loss) / number of (unmasked) loss entries
    "mean"                     same as "sum_over_batch_size"
    "mean_with_sample_weight"  sum(w * loss) / sum(w)
    None or "none"             w * loss, unreduced

Loss objects are immutable, hashable and registered as pytrees with no leaves, so they can be
closed over or passed as static arguments through :func:`jax.jit`, :func:`jax.vmap` and
:func:`jax.tree_util.tree_map` untouched.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import accumulation_dtype, compute_dtype, safe_divide
from losses_jax._validation import (
    as_float_array,
    as_label_array,
    check_broadcastable,
    squeeze_or_expand_to_same_rank,
)

__all__ = [
    "Loss",
    "LossFunctionWrapper",
    "REDUCTIONS",
    "Reduction",
    "reduce_weighted_values",
    "standardize_reduction",
]

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


class Reduction:
    """The reduction names of Keras 2, tf.keras 1.x and R keras, as constants.

    ``AUTO`` (``"auto"``, the default there) means ``"sum_over_batch_size"`` outside a
    distribution strategy, and that is what it means here.

    Examples:
        >>> lj.MeanSquaredError(reduction=lj.Reduction.AUTO).reduction
        'sum_over_batch_size'
        >>> lj.Reduction.all()
        ('auto', 'none', 'sum', 'sum_over_batch_size')
    """

    AUTO = "auto"
    NONE = "none"
    SUM = "sum"
    SUM_OVER_BATCH_SIZE = "sum_over_batch_size"

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return (cls.AUTO, cls.NONE, cls.SUM, cls.SUM_OVER_BATCH_SIZE)

    @classmethod
    def validate(cls, key: str) -> None:
        """Raises ``ValueError`` unless ``key`` is one of :meth:`all` (tf.keras's check)."""
        if key not in cls.all():
            raise ValueError(f"Invalid Reduction Key: {key!r}. Expected one of {cls.all()}.")


def standardize_reduction(reduction: str | None) -> str | None:
    """Validates ``reduction`` (one of :data:`REDUCTIONS`, or ``"auto"``) and returns it.

    ``"auto"``, the default of Keras 2 and tf.keras 1.x, is returned as
    ``"sum_over_batch_size"``, what it means outside a distribution strategy.

    Examples:
        >>> standardize_reduction("sum"), standardize_reduction("auto")
        ('sum', 'sum_over_batch_size')
        >>> standardize_reduction("avg")
        Traceback (most recent call last):
        ...
        ValueError: Invalid value for argument `reduction`: 'avg'. Expected one of ('sum_over_batch_size', 'sum', 'mean', 'mean_with_sample_weight', 'none', None) or 'auto'.
    """
    if reduction == Reduction.AUTO:
        return "sum_over_batch_size"
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"Invalid value for argument `reduction`: {reduction!r}. Expected one of "
            f"{REDUCTIONS} or 'auto'."
        )
    return reduction


def _align_to(values: jax.Array, weights: jax.Array, name: str) -> jax.Array:
    """Broadcasts ``weights`` against ``values``: leading dimensions first, then NumPy rules.

    A weight whose shape matches the leading dimensions of ``values`` scales every element of
    the corresponding slice (a ``(batch,)`` weight scales all timesteps of its sample). This is
    done by mapping an elementwise product with one :func:`jax.vmap` per leading dimension.
    Otherwise NumPy (trailing) broadcasting applies.
    """
    v_shape, w_shape = values.shape, weights.shape
    if 0 < weights.ndim < values.ndim and check_broadcastable(w_shape, v_shape[: weights.ndim]):
        weights = jnp.broadcast_to(weights, v_shape[: weights.ndim])
        scale = jnp.multiply
        for _ in range(weights.ndim):
            scale = jax.vmap(scale)
        return scale(jnp.ones_like(values), weights)
    if check_broadcastable(w_shape, v_shape):
        return jnp.broadcast_to(weights, v_shape)
    raise ValueError(
        f"`{name}` of shape {tuple(w_shape)} does not broadcast to the per-sample loss of shape "
        f"{tuple(v_shape)}: give a scalar, a vector over the leading (batch) dimensions, or an "
        f"array that broadcasts to {tuple(v_shape)}."
    )


def _combine_masks(own_mask: jax.Array, mask: ArrayLike) -> jax.Array:
    """A loss's own mask and the caller's, which may cover only leading dimensions."""
    given = as_label_array(mask, "mask") != 0
    own_mask, given = squeeze_or_expand_to_same_rank(own_mask, given)
    if given.ndim > own_mask.ndim:
        return given & _align_to(given, own_mask, "mask")
    return own_mask & _align_to(own_mask, given, "mask")


def reduce_weighted_values(
    values: ArrayLike,
    sample_weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    reduction: str | None = "sum_over_batch_size",
    dtype: DTypeLike | None = None,
) -> jax.Array:
    """Weights, masks and reduces per-sample losses, with Keras 3's divisors.

    ``sample_weight`` may be a scalar, a vector over the leading (batch) dimensions of
    ``values`` or any array that broadcasts to it; a trailing size-1 dimension is squeezed or
    expanded as Keras does. ``mask`` (boolean, same rules) removes entries: they contribute
    nothing, and ``"sum_over_batch_size"``/``"mean"`` divide by the number of valid entries.
    Sums run in float32 for float16/bfloat16 losses; the result has dtype ``dtype`` (default:
    the dtype of ``values``).

    Args:
        values: per-sample losses, any shape ``(batch, ...)``.
        sample_weight: optional weights, see above.
        mask: optional boolean mask, see above.
        reduction: one of :data:`REDUCTIONS`.
        dtype: optional output dtype.

    Returns:
        A scalar, or the weighted ``values`` for ``reduction=None``/``"none"``.

    Examples:
        >>> losses = jnp.array([[1.0, 2.0], [3.0, 4.0]])
        >>> float(reduce_weighted_values(losses, sample_weight=jnp.array([1.0, 0.0])))
        0.75
        >>> float(reduce_weighted_values(losses, mask=jnp.array([[True, False], [True, False]])))
        2.0
    """
    reduction = standardize_reduction(reduction)
    values = as_float_array(values, "values")
    out_dtype = compute_dtype(dtype) if dtype is not None else values.dtype
    acc_dtype = accumulation_dtype(values.dtype)
    values = values.astype(acc_dtype)

    float_mask = None
    weight_name = "sample_weight"  # what an error about the combined weights names
    if mask is not None:
        mask = as_label_array(mask, "mask")
        float_mask = (mask != 0).astype(acc_dtype)
        if sample_weight is None:
            sample_weight, weight_name = float_mask, "mask"
        else:
            weight_name = "sample_weight * mask"
            weight = as_float_array(sample_weight, "sample_weight", acc_dtype)
            float_mask, weight = squeeze_or_expand_to_same_rank(float_mask, weight)
            # Keras multiplies the mask into the weights; the finer of the two sets the shape.
            if weight.ndim > float_mask.ndim:
                sample_weight = weight * _align_to(weight, float_mask, "mask")
            else:
                sample_weight = float_mask * _align_to(float_mask, weight, "sample_weight")

    if sample_weight is not None:
        sample_weight = as_float_array(sample_weight, weight_name, acc_dtype)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * _align_to(values, sample_weight, weight_name)

    if reduction in (None, "none") or values.shape in ((), (0,)):
        return values.astype(out_dtype)
    total = jnp.sum(values)
    if reduction == "sum":
        return total.astype(out_dtype)
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = jnp.sum(sample_weight)
    elif float_mask is not None:
        # Entries per mask element: the mask may be coarser than the losses, e.g. (B,) vs (B, T).
        divisor = jnp.sum(float_mask) * (values.size / max(float_mask.size, 1))
    else:
        divisor = jnp.asarray(values.size, acc_dtype)
    return safe_divide(total, divisor).astype(out_dtype)


_BASE_PARAMETERS = frozenset({"self", "name", "reduction", "dtype"})


def _snake_case(name: str) -> str:
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _freeze(value: Any) -> Any:
    """A hashable rendering of a config value (lists -> tuples, dicts -> sorted tuples)."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (np.ndarray, jax.Array)):
        return (str(value.dtype), tuple(np.asarray(value).ravel().tolist()), value.shape)
    return value


class _FrozenAfterInit(type):
    """Metaclass that makes instances read-only once ``__init__`` has returned."""

    def __call__(cls, *args, **kwargs):
        obj = super().__call__(*args, **kwargs)
        object.__setattr__(obj, "_frozen", True)
        return obj

    @property
    def __signature__(cls) -> inspect.Signature:
        # The constructor's, for help() and IDEs (the generic __call__ above would hide it).
        signature = inspect.signature(cls.__init__)
        return signature.replace(parameters=list(signature.parameters.values())[1:])


class Loss(metaclass=_FrozenAfterInit):
    """Base class of every loss.

    A library loss names its per-sample ``function`` and lists the function's options in its
    ``__init__``, validating each and storing it as an attribute of the same name::

        class Huber(Loss):
            function = huber

            def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss",
                         dtype=None):
                super().__init__(name=name, reduction=reduction, dtype=dtype)
                self.delta = check_number(delta, "delta", low=0.0, low_inclusive=False)

    ``loss(y_true, y_pred, sample_weight=None, mask=None, **inputs)`` converts ``y_pred`` (and
    floating ``y_true``) to the compute ``dtype``, calls :meth:`call` for per-sample losses and
    reduces them with :func:`reduce_weighted_values`. ``inputs`` are further arrays a loss needs
    beyond ``(y_true, y_pred)`` (``classifier=`` of :class:`~losses_jax.LinearCrossEntropy`),
    passed by keyword to ``function``. Integer labels are kept integer. A custom loss may instead
    override :meth:`call`.

    Args:
        name: a name for the loss (default: the class name in snake case).
        reduction: ``"sum_over_batch_size"`` (default), ``"sum"``, ``"mean"``,
            ``"mean_with_sample_weight"``, ``None`` or ``"none"``.
        dtype: compute and result dtype (default float32); ``"bfloat16"``/``"float16"`` give a
            result of that dtype while logs and sums still run in float32.

    Examples:
        >>> class MeanCubicError(Loss):
        ...     def call(self, y_true, y_pred):
        ...         return jnp.mean(jnp.abs(y_pred - y_true) ** 3, axis=-1)
        >>> loss = MeanCubicError()
        >>> float(loss(jnp.zeros((2, 2)), jnp.ones((2, 2))))
        1.0
        >>> loss.name, MeanCubicError.from_config(loss.get_config()) == loss
        ('mean_cubic_error', True)
    """

    #: The per-sample function; called as ``function(y_true, y_pred, **inputs, **options)``.
    function: ClassVar[Callable[..., jax.Array] | None] = None
    #: Whether ``y_true`` holds class ids, kept exact instead of cast to the compute dtype.
    labels_are_ids: ClassVar[bool] = False

    def __init__(
        self,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        dtype: DTypeLike | None = None,
    ):
        self.name = name or _snake_case(type(self).__name__)
        self.reduction = standardize_reduction(reduction)
        self.dtype = compute_dtype(dtype).name

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        function = cls.__dict__.get("function")
        if isinstance(function, types.FunctionType):  # stored unbound, called as a plain function
            cls.function = staticmethod(function)
        _register_pytree(cls)

    def __setattr__(self, key, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(
                f"{type(self).__name__} is immutable; create a new loss instead of setting {key!r}."
            )
        object.__setattr__(self, key, value)

    @classmethod
    def option_names(cls) -> tuple[str, ...] | None:
        """The options the constructor takes beyond ``name``, ``reduction`` and ``dtype``.

        ``None`` when the constructor takes arbitrary keywords (:class:`LossFunctionWrapper`).
        """
        return _option_names(cls)

    @property
    def fn(self) -> Callable[..., jax.Array] | None:
        """The per-sample function (Keras's ``LossFunctionWrapper.fn``)."""
        return type(self).function

    @property
    def options(self) -> dict[str, Any]:
        """The options as stored (sequences as tuples), passed to ``function`` on each call."""
        return {key: getattr(self, key) for key in self.option_names() or () if hasattr(self, key)}

    def __call__(
        self,
        y_true: ArrayLike,
        y_pred: ArrayLike,
        sample_weight: ArrayLike | None = None,
        mask: ArrayLike | None = None,
        **inputs: Any,
    ) -> jax.Array:
        """The reduced loss; see :func:`reduce_weighted_values` for weights, masks and divisors.

        Args:
            y_true: targets (class ids for losses on integer labels).
            y_pred: predictions; converted to the loss's ``dtype``.
            sample_weight: optional weights: a scalar, one per sample, or per element.
            mask: optional boolean mask of the per-sample losses (or of leading dimensions).
            **inputs: further arrays the loss takes by keyword (e.g. ``classifier=``).

        Returns:
            A scalar, or the weighted per-sample losses for ``reduction=None``/``"none"``.
        """
        targets = jax.tree_util.tree_map(self._convert_y_true, y_true)
        predictions = jax.tree_util.tree_map(self._convert_y_pred, y_pred)
        losses = self.call(targets, predictions, **inputs)
        own_mask = self.loss_mask(targets, predictions, losses)
        if own_mask is not None:
            mask = own_mask if mask is None else _combine_masks(own_mask, mask)
        return reduce_weighted_values(
            losses,
            sample_weight=sample_weight,
            mask=mask,
            reduction=self.reduction,
            dtype=self.dtype,
        )

    def _convert_y_pred(self, x: ArrayLike) -> jax.Array:
        return as_float_array(x, "y_pred", self.dtype)

    def _convert_y_true(self, x: ArrayLike) -> jax.Array:
        x = as_label_array(x, "y_true")
        if self.labels_are_ids or not jnp.issubdtype(x.dtype, jnp.floating):
            return x  # ids stay exact: a bfloat16 cast would merge ids above 256
        return x.astype(self.dtype)

    def call(self, y_true: jax.Array, y_pred: jax.Array, **inputs: Any) -> jax.Array:
        """Per-sample losses: ``function(y_true, y_pred, **inputs, **options)``."""
        function = type(self).function
        if function is None:
            raise NotImplementedError(
                f"{type(self).__name__} sets no `function`; set one or override `call`."
            )
        return function(y_true, y_pred, **inputs, **self.options)

    def loss_mask(self, y_true: jax.Array, y_pred: jax.Array, losses: jax.Array) -> Any:
        """Entries of the per-sample ``losses`` to leave out of the reduction (``None``: none).

        Keras attaches such a mask to the losses (e.g. ``ignore_class``); here a subclass
        returns it. It is combined with the caller's ``mask`` by logical and.
        """
        return None

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments; ``type(self).from_config(config)`` rebuilds the loss."""
        config = {"name": self.name, "reduction": self.reduction, "dtype": self.dtype}
        config.update(self.options)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Loss:
        """Rebuilds a loss from :meth:`get_config`'s output; unknown keys raise ``ValueError``."""
        names = cls.option_names()
        if names is not None:
            valid = _BASE_PARAMETERS.union(names) - {"self"}
            unknown = sorted(set(config) - valid)
            if unknown:
                raise ValueError(
                    f"{cls.__name__}.from_config: unknown config keys {unknown}; valid keys are "
                    f"{sorted(valid)}."
                )
        return cls(**config)

    def _identity(self):
        return type(self), _freeze(self.get_config())

    def __eq__(self, other):
        return isinstance(other, Loss) and self._identity() == other._identity()

    def __hash__(self):
        return hash(self._identity())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@functools.cache
def _option_names(cls: type) -> tuple[str, ...] | None:
    """Keyword names of the constructor, following ``**kwargs`` up the MRO (None: any name)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        if klass is LossFunctionWrapper:
            return None  # its **kwargs go to `fn`, whatever they are
        params = inspect.signature(klass.__init__).parameters.values()
        names += [p.name for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break
    return tuple(dict.fromkeys(n for n in names if n not in _BASE_PARAMETERS))


def _register_pytree(cls: type) -> None:
    # No leaves: the whole object is static auxiliary data, so jit/vmap/tree_map pass it along.
    jax.tree_util.register_pytree_node(cls, lambda loss: ((), loss), lambda loss, _: loss)


_register_pytree(Loss)


class LossFunctionWrapper(Loss):
    """Turns any ``fn(y_true, y_pred, **kwargs) -> per-sample losses`` into a full loss.

    ``y_true`` and ``y_pred`` are aligned as in Keras (a trailing size-1 dimension is squeezed
    or expanded) before ``fn`` is called with the stored ``kwargs``.

    Args:
        fn: the per-sample loss function.
        reduction, name, dtype: as for :class:`Loss` (``name`` defaults to ``fn.__name__``).
        **kwargs: extra keyword arguments passed to ``fn`` on every call.

    Examples:
        >>> def mean_fourth_power(y_true, y_pred, scale=1.0):
        ...     return scale * jnp.mean((y_pred - y_true) ** 4, axis=-1)
        >>> loss = LossFunctionWrapper(mean_fourth_power, scale=2.0, reduction="sum")
        >>> float(loss(jnp.zeros((3, 2)), jnp.ones((3, 2))))
        6.0
    """

    def __init__(
        self,
        fn: Callable[..., jax.Array],
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
        dtype: DTypeLike | None = None,
        **kwargs: Any,
    ):
        if not callable(fn):
            raise TypeError(f"`fn` must be callable; received {type(fn).__name__}.")
        super().__init__(
            name=name or getattr(fn, "__name__", None), reduction=reduction, dtype=dtype
        )
        self._fn = fn
        self._fn_kwargs = dict(kwargs)

    @property
    def fn(self) -> Callable[..., jax.Array]:
        return self._fn

    @property
    def options(self) -> dict[str, Any]:
        return dict(self._fn_kwargs)

    def call(self, y_true: jax.Array, y_pred: jax.Array, **inputs: Any) -> jax.Array:
        if isinstance(y_true, jax.Array) and isinstance(y_pred, jax.Array):
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self._fn(y_true, y_pred, **inputs, **self._fn_kwargs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if type(self) is LossFunctionWrapper:  # subclasses fix `fn` in their constructor
            config["fn"] = self.fn
        return config

    def __repr__(self):
        name = getattr(self.fn, "__name__", repr(self.fn))
        return f"LossFunctionWrapper({name}, kwargs={self._fn_kwargs!r})"
