"""Issue 19, items 5 and 6: hostile corpus entries (links leading outside the folder, dangling links, FIFOs,
BOM-less Chinese UTF-16) and malformed metadata (essays.toml, errata.toml, situations.toml): each is a warning or one
error line naming the file, the entry and the field, never a traceback; `coach ask` keeps serving an intact index
while the metadata is broken."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from coach import cli
from coach.corpus import MetadataError, decode_bytes, essay_files, load_corpus

from reliability_support import ESSAYS_A, FakeEmbedder, make_settings

SECRET = "机密标题 SECRET-TITLE\n这一行来自语料库文件夹之外,不能被索引。\n"


# ---------------------------------------------------------------- item 5: links, FIFOs, BOM-less UTF-16


def test_link_outside_the_corpus_is_refused_with_a_warning_naming_it(tmp_path):
    settings = make_settings(tmp_path)
    outside = tmp_path / "elsewhere" / "secret.txt"
    outside.parent.mkdir()
    outside.write_text(SECRET, encoding="utf-8")
    (settings.corpus_dir / "evil.txt").symlink_to(outside)
    (settings.corpus_dir / "evil-relative.md").symlink_to(os.path.join("..", "elsewhere", "secret.txt"))
    loaded = load_corpus(settings.corpus_dir)
    assert {e.path.name for e in loaded.essays} == set(ESSAYS_A)
    assert "SECRET" not in " ".join(e.meta.title + e.text for e in loaded.essays)
    for name in ("evil.txt", "evil-relative.md"):
        named = [w for w in loaded.warnings if name in w]
        assert len(named) == 1 and "outside the corpus folder" in named[0], loaded.warnings


def test_the_added_essays_folder_reads_no_link_leading_outside(tmp_path):
    from coach.pipeline import load_sources

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    settings = make_settings(tmp_path).with_overrides(upload_dir=uploads)
    outside = tmp_path / "secret.txt"
    outside.write_text(SECRET, encoding="utf-8")
    (settings.corpus_dir / "evil.txt").symlink_to(outside)
    (uploads / "evil-upload.txt").symlink_to(outside)
    (uploads / "upload-new.txt").write_text("新文章\n上传的文章。\n", encoding="utf-8")
    loaded = load_sources(settings)
    names = {e.path.name for e in loaded.essays}
    assert "upload-new.txt" in names and not {"evil.txt", "evil-upload.txt"} & names
    assert "SECRET" not in " ".join(e.meta.title + e.text for e in loaded.essays)
    assert any("evil-upload.txt" in w and "outside" in w for w in loaded.warnings), loaded.warnings


def test_link_inside_the_corpus_is_followed(tmp_path):
    settings = make_settings(tmp_path)
    (settings.corpus_dir / "drafts").mkdir()
    (settings.corpus_dir / "drafts" / "kept.dat").write_text("留下\n链接到文件夹内的文件照常读取。\n", "utf-8")
    (settings.corpus_dir / "kept.txt").symlink_to(os.path.join("drafts", "kept.dat"))
    loaded = load_corpus(settings.corpus_dir)
    assert "kept.txt" in {e.path.name for e in loaded.essays} and loaded.warnings == []


def test_dangling_link_and_fifo_are_warned_and_never_block(tmp_path):
    settings = make_settings(tmp_path)
    (settings.corpus_dir / "gone.txt").symlink_to(tmp_path / "no-such-file.txt")
    (settings.corpus_dir / "loop.txt").symlink_to(settings.corpus_dir / "loop.txt")
    os.mkfifo(settings.corpus_dir / "pipe.txt")
    (settings.corpus_dir / "folder.md").mkdir()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("loaded", load_corpus(settings.corpus_dir)), daemon=True)
    t.start()
    t.join(60)
    assert "loaded" in result, "reading the corpus blocked on the FIFO"
    loaded = result["loaded"]
    assert {e.path.name for e in loaded.essays} == set(ESSAYS_A)
    expected = {
        "gone.txt": "does not exist",
        "loop.txt": "does not exist",
        "pipe.txt": "FIFO",
        "folder.md": "not a regular file",
    }
    for name, words in expected.items():
        named = [w for w in loaded.warnings if name in w]
        assert len(named) == 1 and words in named[0], (name, loaded.warnings)
    assert [p.name for p in essay_files(settings.corpus_dir)] == sorted(ESSAYS_A)


@pytest.mark.parametrize(
    "text",
    [
        "客户生气怎么办\n我先道歉,然后认真听客户说明情况。耐心是最好的工具。",
        "客戶生氣怎麼辦\n我先道歉,然後認真聽客戶說明情況。耐心是最好的工具。",
        "第一次接电话 first call\n紧张的时候,先深呼吸,再慢慢说。",
    ],
)
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_chinese_utf16_without_a_bom_is_detected(tmp_path, text, encoding):
    assert decode_bytes(text.encode(encoding)) == (text, encoding)
    settings = make_settings(tmp_path)
    (settings.corpus_dir / "utf16.txt").write_bytes(text.encode(encoding))
    loaded = load_corpus(settings.corpus_dir)
    assert "utf16.txt" in {e.path.name for e in loaded.essays}, loaded.warnings


@pytest.mark.parametrize(
    "text,encoding",
    [
        ("客户生气怎么办,我先道歉。", "gbk"),
        ("客戶生氣怎麼辦,我先道歉。", "big5"),
        ("客户生气怎么办,我先道歉。", "utf-8"),
    ],
)
def test_other_chinese_encodings_are_not_mistaken_for_utf16(text, encoding):
    assert decode_bytes(text.encode(encoding))[0] == text


# ---------------------------------------------------------------- item 6: malformed metadata

ENTRY = 'id = "angry"\nsource = "angry.txt"\ntitle = "遇到愤怒的客户"\nauthor = "老王"\n'


ESSAY_CASES = [
    ("[[essay]]\n" + ENTRY.replace('id = "angry"\n', ""), ["essay #1", "`id`"]),
    ("[[essay]]\n" + ENTRY.replace('title = "遇到愤怒的客户"\n', ""), ["essay #1", "'angry'", "`title`"]),
    ("[[essay]]\n" + ENTRY.replace('author = "老王"\n', ""), ["essay #1", "`author`"]),
    ("[[essay]]\n" + ENTRY.replace('author = "老王"', 'author = ""'), ["essay #1", "`author`"]),
    ("[[essay]]\n" + ENTRY.replace('author = "老王"', 'author = ["老王", "老李"]'), ["essay #1", "`author`", "array"]),
    ("[[essay]]\n" + ENTRY + 'script = "klingon"\n', ["essay #1", "`script`", "klingon"]),
    ('essay = "x"\n', ["`essay`", "array of tables"]),
    ("[essay]\n" + ENTRY, ["`essay`", "array of tables"]),
    ("essay = [1, 2]\n", ["essay #1", "table"]),
]


@pytest.mark.parametrize("toml,words", ESSAY_CASES)
def test_malformed_essay_entry_is_one_line_naming_file_entry_and_field(tmp_path, toml, words):
    settings = make_settings(tmp_path)
    (settings.corpus_dir / "essays.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(MetadataError) as caught:
        load_corpus(settings.corpus_dir)
    lines = str(caught.value).splitlines()
    assert all(line.startswith("essays.toml") for line in lines)
    assert any(all(w in line for w in words) for line in lines), lines


ERRATA_CASES = [
    ('[[erratum]]\nessay = "angry"\ncorrected = "x"\n', ["erratum #1", "'angry'", "`damaged`"]),
    ('[[erratum]]\ndamaged = "破口"\ncorrected = "x"\n', ["erratum #1", "`essay`"]),
    ('[[erratum]]\nessay = "angry"\ndamaged = "破口"\n', ["erratum #1", "`corrected`"]),
    ('[[erratum]]\nessay = "angry"\ndamaged = 7\ncorrected = "x"\n', ["erratum #1", "`damaged`", "number"]),
    ('erratum = "x"\n', ["`erratum`", "array of tables"]),
]


@pytest.mark.parametrize("toml,words", ERRATA_CASES)
def test_malformed_erratum_is_one_line_naming_file_entry_and_field(tmp_path, toml, words):
    settings = make_settings(tmp_path)
    (settings.corpus_dir / "errata.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(MetadataError) as caught:
        load_corpus(settings.corpus_dir)
    lines = str(caught.value).splitlines()
    assert any(all(w in line for w in words) for line in lines) and all("errata.toml" in line for line in lines)


def test_every_malformed_entry_of_every_file_gets_its_own_line(tmp_path):
    settings = make_settings(tmp_path)
    c = settings.corpus_dir
    (c / "essays.toml").write_text(
        '[[essay]]\nid = "a"\n\n[[essay]]\n' + ENTRY + '\n[[essay]]\ntitle = "t"\n', encoding="utf-8"
    )
    (c / "errata.toml").write_text('[[erratum]]\nessay = "angry"\n', encoding="utf-8")
    (c / "situations.toml").write_text('[[situation]]\nessay = "angry"\nen = "x"\nzh = "y"\n', encoding="utf-8")
    with pytest.raises(MetadataError) as caught:
        load_corpus(c)
    lines = caught.value.problems
    assert sum("essay #1" in line for line in lines) == 2  # title and author of the first entry
    assert sum("essay #3" in line for line in lines) == 2  # id and author of the third
    assert not any("essay #2" in line for line in lines)
    assert sum("errata.toml" in line for line in lines) == 2  # damaged and corrected
    assert [line for line in lines if "situations.toml" in line and "`anchor`" in line]


def test_bad_utf8_metadata_names_the_file(tmp_path):
    settings = make_settings(tmp_path)
    for name in ("essays.toml", "errata.toml", "situations.toml"):
        path = settings.corpus_dir / name
        saved = path.read_bytes() if path.exists() else None
        path.write_bytes(b'[[essay]]\nid = "\xff\xfe bad"\n')
        with pytest.raises(MetadataError, match=rf"^{name} is not valid UTF-8"):
            load_corpus(settings.corpus_dir)
        path.write_bytes(saved) if saved is not None else path.unlink()


def test_metadata_with_a_byte_order_mark_loads(tmp_path):
    settings = make_settings(tmp_path)
    (settings.corpus_dir / "essays.toml").write_bytes(("\ufeff[[essay]]\n" + ENTRY).encode("utf-8"))
    loaded = load_corpus(settings.corpus_dir)
    assert next(e for e in loaded.essays if e.path.name == "angry.txt").meta.author == "老王"


def _cli(settings, *args):
    return cli.main(
        ["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), "--model", "fake", *args]
    )


@pytest.fixture
def fake_cli(monkeypatch):
    import coach.embed

    emb = FakeEmbedder()
    monkeypatch.setattr(coach.embed, "Embedder", lambda *a, **k: emb)
    return emb


BROKEN_METADATA = [
    ("essays.toml", "[[essay]]\nid = 'x'\n"),
    ("essays.toml", "[[essay]\nid = 'x\n"),  # not TOML at all
    ("essays.toml", b"[[essay]]\nid = '\xff'\n"),  # not UTF-8
    ("errata.toml", '[[erratum]]\nessay = "angry"\n'),
    ("errata.toml", '[[erratum]]\nessay = "angry"\ndamaged = "no such words"\ncorrected = "x"\n'),  # stale erratum
    ("situations.toml", '[[situation]]\nessay = "angry"\n'),
]


@pytest.mark.parametrize("broken", BROKEN_METADATA)
def test_ask_keeps_serving_the_intact_index_while_metadata_is_broken(tmp_path, fake_cli, capsys, broken):
    settings = make_settings(tmp_path)
    assert _cli(settings, "build") == 0
    name, content = broken
    path = settings.corpus_dir / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    capsys.readouterr()
    assert _cli(settings, "ask", "--json", "客户破口大骂怎么办") == 0
    out, err = capsys.readouterr()
    assert "破口大骂" in out and "Traceback" not in err
    assert (
        name in err
        and "previous index" in err
        and all(line.startswith("warning: ") for line in err.splitlines() if line and not line.startswith("["))
    )
    # `coach build` refuses, one line per problem, each naming the file
    assert _cli(settings, "build") == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors and all(name in line for line in errors) and "Traceback" not in err
    # --no-build still says the index is stale (the metadata changed) and names the fix
    assert _cli(settings, "ask", "--no-build", "客户生气") == 2


def test_coach_corpus_prints_one_error_line_per_problem(tmp_path, capsys):
    settings = make_settings(tmp_path)
    (settings.corpus_dir / "essays.toml").write_text('[[essay]]\nid = "a"\n', encoding="utf-8")
    assert _cli(settings, "corpus") == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: essays.toml: essay #1 (id 'a'): field `title` is missing or empty; add it as text and build again",
        "error: essays.toml: essay #1 (id 'a'): field `author` is missing or empty; add it as text and build again",
    ]


if sys.platform == "win32":  # links and FIFOs as tested here are POSIX
    pytestmark = pytest.mark.skip("POSIX only")
