"""The loss families: one module each, listed once in :data:`FAMILIES`.

Each family module defines per-sample functions and the :class:`~losses_jax.Loss` classes that
reduce them, and lists its public names (aliases included) in ``__all__``. The package's
exports, :func:`losses_jax.get` and :func:`losses_jax.identifiers` are all derived from this
list: a new family is one module here plus one line in each block below.
"""

from losses_jax.losses import (
    binary,
    categorical,
    contrastive,
    divergences,
    fenchel_young_losses,
    large_vocab,
    linear_head,
    margin,
    margin_softmax,
    metric_learning,
    modulated_crossentropy,
    multiclass_margin,
    pairs,
    policy,
    preference,
    probabilistic,
    ranking,
    regression,
    robust_regression,
    segmentation,
    sequence,
)
from losses_jax.losses.binary import *  # noqa: F403
from losses_jax.losses.categorical import *  # noqa: F403
from losses_jax.losses.contrastive import *  # noqa: F403
from losses_jax.losses.divergences import *  # noqa: F403
from losses_jax.losses.fenchel_young_losses import *  # noqa: F403
from losses_jax.losses.large_vocab import *  # noqa: F403
from losses_jax.losses.linear_head import *  # noqa: F403
from losses_jax.losses.margin import *  # noqa: F403
from losses_jax.losses.margin_softmax import *  # noqa: F403
from losses_jax.losses.metric_learning import *  # noqa: F403
from losses_jax.losses.modulated_crossentropy import *  # noqa: F403
from losses_jax.losses.multiclass_margin import *  # noqa: F403
from losses_jax.losses.pairs import *  # noqa: F403
from losses_jax.losses.policy import *  # noqa: F403
from losses_jax.losses.preference import *  # noqa: F403
from losses_jax.losses.probabilistic import *  # noqa: F403
from losses_jax.losses.ranking import *  # noqa: F403
from losses_jax.losses.regression import *  # noqa: F403
from losses_jax.losses.robust_regression import *  # noqa: F403
from losses_jax.losses.segmentation import *  # noqa: F403
from losses_jax.losses.sequence import *  # noqa: F403

#: Every family module, in catalogue order.
FAMILIES = (
    binary,
    categorical,
    modulated_crossentropy,
    probabilistic,
    divergences,
    regression,
    robust_regression,
    margin,
    multiclass_margin,
    pairs,
    metric_learning,
    margin_softmax,
    contrastive,
    ranking,
    preference,
    policy,
    segmentation,
    sequence,
    large_vocab,
    linear_head,
    fenchel_young_losses,
)

__all__: list[str] = []
__all__ += binary.__all__
__all__ += categorical.__all__
__all__ += modulated_crossentropy.__all__
__all__ += probabilistic.__all__
__all__ += divergences.__all__
__all__ += regression.__all__
__all__ += robust_regression.__all__
__all__ += margin.__all__
__all__ += multiclass_margin.__all__
__all__ += pairs.__all__
__all__ += metric_learning.__all__
__all__ += margin_softmax.__all__
__all__ += contrastive.__all__
__all__ += ranking.__all__
__all__ += preference.__all__
__all__ += policy.__all__
__all__ += segmentation.__all__
__all__ += sequence.__all__
__all__ += large_vocab.__all__
__all__ += linear_head.__all__
__all__ += fenchel_young_losses.__all__
