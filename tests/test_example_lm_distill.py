"""examples/lm_distill_dpo.py runs (``--quick``), writes its figure and metrics, and its
per-sequence log-probs and DPO loss are the float64 formulas (recomputed here from the logits)."""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import references as ref
from test_examples import load_example


def test_quick_run_writes_curves_and_improves_each_stage(tmp_path, capsys):
    example = load_example("lm_distill_dpo")
    metrics = example.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert json.loads((tmp_path / "metrics.json").read_text())["quick"] is True
    out = capsys.readouterr().out
    # stdout is not a terminal here: progress comes as lines, not a tqdm bar.
    assert "distillation: step 8/8" in out and "DPO: step 8/8" in out
    assert metrics["teacher_loss"][-1] < metrics["teacher_loss"][0]
    assert metrics["distillation_kl"][-1] < metrics["distillation_kl"][0]
    # The policy starts as the reference: every margin is 0 and the loss log 2.
    assert math.isclose(metrics["dpo_loss"][0], math.log(2.0), rel_tol=1e-5)
    assert metrics["dpo_loss"][-1] < metrics["dpo_loss"][0]
    assert metrics["good_mass_after_dpo"] > metrics["good_mass_before_dpo"]


def test_sequence_log_probs_and_dpo_match_float64(rng):
    example = load_example("lm_distill_dpo")
    chain = example.make_chain(rng)
    # The --quick run's batch of pairs: its compiled pair_log_probs is reused.
    chosen, rejected = example.preference_pairs(rng, chain, example.QUICK.pairs)
    policy = example.init_params(jax.random.key(1), example.STUDENT_WIDTH)
    reference = example.init_params(jax.random.key(2), example.STUDENT_WIDTH)

    def numpy_pairs(params):
        out = []
        for tokens in (chosen, rejected):
            hidden = np.asarray(jax.jit(example.hidden_states)(params, tokens[:, :-1]))
            logits = hidden.astype(np.float64) @ np.asarray(params["head"]["kernel"], np.float64)
            logits += np.asarray(params["head"]["bias"], np.float64)
            per_token = np.take_along_axis(ref.log_softmax(logits), tokens[:, 1:, None], -1)
            out.append(np.where(example.COMPLETION, per_token[..., 0], 0.0).sum(-1))
        return np.stack(out, -1)

    pairs = jax.jit(example.pair_log_probs)
    got_policy, got_reference = (pairs(p, chosen, rejected) for p in (policy, reference))
    np.testing.assert_allclose(got_policy, numpy_pairs(policy), rtol=1e-5)
    loss = example.lj.DPO(beta=0.1)
    expected = ref.dpo(numpy_pairs(reference), numpy_pairs(policy), beta=0.1).mean()
    np.testing.assert_allclose(float(loss(got_reference, got_policy)), expected, rtol=1e-5)
