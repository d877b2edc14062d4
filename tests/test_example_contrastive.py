"""``examples/contrastive.py --quick`` runs on 8 simulated devices and writes its two PNGs.

Run as a script in a subprocess (it sets up the 8 CPU devices before JAX starts), like a user
would; skipped when the ``examples`` extra (scikit-learn, matplotlib, optax) is missing.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from test_examples import EXAMPLES, ROOT, require_extras


@pytest.mark.slow  # 8-device compilations: ~150 s on 2 loaded cores
def test_contrastive_example_trains_both_losses_and_writes_its_pictures(tmp_path):
    require_extras("contrastive")
    command = [sys.executable, str(EXAMPLES / "contrastive.py"), "--quick", "--out", str(tmp_path)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "8 devices" in proc.stdout
    for loss in ("siglip", "clip"):
        lines = [line for line in proc.stdout.splitlines() if line.startswith(f"[{loss:6s}]")]
        assert lines, proc.stdout
        found = re.search(r"top-1 retrieval ([0-9.]+)", lines[-1])
        assert found, lines[-1]
        assert 0.0 <= float(found.group(1)) <= 1.0
    clip_accuracy = float(re.findall(r"\[clip  \].*top-1 retrieval ([0-9.]+)", proc.stdout)[-1])
    assert clip_accuracy > 5 / 400, "CLIP should beat chance (1/400) within the quick run"
    for name in ("retrieval.png", "embeddings.png"):
        path = tmp_path / name
        assert path.exists() and path.stat().st_size > 1000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
