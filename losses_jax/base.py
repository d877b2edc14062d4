"""The ``Loss`` base class, ``LossFunctionWrapper`` and the one shared reduction.

Every loss in the library is a per-sample function plus a :class:`Loss` subclass that names it
(``function = huber``), takes the function's options in a real ``__init__`` signature, validates
them once and stores them as read-only attributes. Calling the instance calls the function with
those options and hands the result to :func:`reduce_weighted_values` (written once, in
:mod:`losses_jax._reduction`, and exported here): sample weighting, masking and reduction.

Reductions and their divisors (Keras 3's, exactly)::

    "sum"                      sum(w * loss)
    "sum_over_batch_size"      sum(w * loss) / number of (unmasked) loss entries
    "mean"                     same as "sum_over_batch_size"
    "mean_with_sample_weight"  sum(w * loss) / sum(w)   (or / sum(w * divisor_weights))
    None or "none"             w * loss, unreduced

Two hooks let a subclass adjust this without overriding ``__call__``: :meth:`Loss.loss_mask`
(entries to leave out, e.g. ignored labels or empty lists) and :meth:`Loss.divisor_weights`
(what each entry counts in the divisor of ``"mean_with_sample_weight"``, e.g. the class
weight of its label, PyTorch's class-weighted mean). A third, :meth:`Loss.weighted_sum`, lets a
loss compute the reduced value itself in one fused pass (its weights read off the reduction).

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

from losses_jax._numerics import compute_dtype
from losses_jax._reduction import (
    REDUCTIONS,
    Reduction,
    combine_masks,
    reduce_weighted_values,
    standardize_reduction,
)
from losses_jax._validation import as_float_array, as_label_array, squeeze_or_expand_to_same_rank

__all__ = [
    "Loss",
    "LossFunctionWrapper",
    "REDUCTIONS",
    "Reduction",
    "reduce_weighted_values",
    "standardize_reduction",
]

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
    override :meth:`call`; :meth:`loss_mask` and :meth:`divisor_weights` adjust the reduction
    (no loss overrides ``__call__``).

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
    #: Whether the call's ``mask`` also reaches ``function`` as its ``where=`` rows (and-ed
    #: with any ``where`` given): for batch-coupled losses, whose per-sample values depend on
    #: the other rows, a masked (padded) row must leave the computation, not just the reduction.
    mask_is_where: ClassVar[bool] = False

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
        if self.mask_is_where and mask is not None:
            where = inputs.get("where")
            inputs = {**inputs, "where": mask if where is None else jnp.logical_and(where, mask)}

        def reduce(losses: jax.Array) -> jax.Array:
            own_mask = self.loss_mask(targets, predictions, losses, **inputs)
            full_mask = mask
            if own_mask is not None:
                full_mask = own_mask if mask is None else combine_masks(own_mask, mask)
            divisor_weights = None
            if self.reduction == "mean_with_sample_weight":
                divisor_weights = self.divisor_weights(targets, predictions, **inputs)
            return reduce_weighted_values(
                losses,
                sample_weight=sample_weight,
                mask=full_mask,
                reduction=self.reduction,
                dtype=self.dtype,
                divisor_weights=divisor_weights,
            )

        if self.reduction not in (None, "none"):
            fused = self.weighted_sum(targets, predictions, reduce, **inputs)
            if fused is not None:
                return fused
        return reduce(self.call(targets, predictions, **inputs))

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

    def loss_mask(
        self, y_true: jax.Array, y_pred: jax.Array, losses: jax.Array, **inputs: Any
    ) -> Any:
        """Entries of the per-sample ``losses`` to leave out of the reduction (``None``: none).

        Keras attaches such a mask to the losses (e.g. ``ignore_class``); here a subclass
        returns it. It is combined with the caller's ``mask`` by logical and. ``inputs`` are
        the call's further arrays (e.g. ``where=`` of the list ranking losses).
        """
        return None

    def weighted_sum(
        self, y_true: jax.Array, y_pred: jax.Array, reduce: Callable, **inputs: Any
    ) -> Any:
        """The reduced loss computed in one fused pass, or ``None`` (the default: the plain path).

        ``reduce`` maps per-sample losses to the reduced loss; it is linear in them (weights,
        masks and divisor do not depend on the losses), so a loss whose gradients are cheaper
        computed together with its value (:class:`~losses_jax.LinearCrossEntropy`) can take
        its weights from ``reduce`` and return ``sum(weights * losses)`` itself.
        """
        return None

    def divisor_weights(self, y_true: jax.Array, y_pred: jax.Array, **inputs: Any) -> Any:
        """What each entry of the losses counts in the divisor of ``"mean_with_sample_weight"``
        (``None``: its sample weight, Keras's divisor).

        Called only for that reduction; see ``divisor_weights`` of
        :func:`reduce_weighted_values`. PyTorch's class-weighted mean returns the class weight
        of each sample's label here.
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
