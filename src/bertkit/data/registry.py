"""A registry of well-known data sets: a name resolves to local files, downloaded once when missing.

Files live in ``<data dir>/<name>/`` (``--data-dir``, else ``$BERTKIT_DATA_DIR``, else the user cache).
A missing file is fetched from its canonical public source with a progress bar and checked against
its published md5 before it is renamed into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bertkit.atomic import atomic_path
from bertkit.errors import BertkitError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    md5: str


@dataclass(frozen=True)
class DatasetSpec:
    task: str
    splits: dict[str, RemoteFile]
    # config the data needs, {section: {field: value}}, applied under the user's own flags
    config: dict[str, dict[str, Any]] = field(default_factory=dict)
    licence: str = ""


WNUT17_REPO = (
    "https://raw.githubusercontent.com/leondz/emerging_entities_17/e52a2d2a71ac1a051ca2d532eef28653c5c02603"
)
WEIBO_REPO = (
    "https://raw.githubusercontent.com/hltcoe/golden-horse/7a73c08e45ed94312af4ef2d97cc35a47d029e99/data"
)

DATASETS: dict[str, DatasetSpec] = {
    "wnut17": DatasetSpec(
        task="ner",
        splits={
            "train": RemoteFile(
                "wnut17train.conll", f"{WNUT17_REPO}/wnut17train.conll", "c213127d9438fb2c64fe0fabe8644489"
            ),
            "dev": RemoteFile(
                "emerging.dev.conll", f"{WNUT17_REPO}/emerging.dev.conll", "29ad3845ac26a060fa3eecce3eb6c0fb"
            ),
            "test": RemoteFile(
                "emerging.test.annotated",
                f"{WNUT17_REPO}/emerging.test.annotated",
                "811aac4001facfa08a1b56ee0a9c094a",
            ),
        },
        licence="CC BY 4.0",
    ),
    "weibo_ner": DatasetSpec(
        task="ner",
        splits={
            split: RemoteFile(f"weiboNER_2nd_conll.{split}", f"{WEIBO_REPO}/weiboNER_2nd_conll.{split}", md5)
            for split, md5 in (
                ("train", "452359bfc9c5b1a5196b16772e5ff8bb"),
                ("dev", "1c0d3912fb7162d9c36450efe34dedd4"),
                ("test", "8e098069b27c3765726416ecce6b1b01"),
            )
        },
        # characters carry a position suffix (我0); 14 entities start with I- and are repaired, counted
        config={"ner": {"strip_position_suffix": True}, "data": {"on_bad_line": "warn"}},
        licence="annotations CC BY-SA 3.0; messages under Weibo's terms",
    ),
}


def default_data_dir() -> Path:
    if os.environ.get("BERTKIT_DATA_DIR"):
        return Path(os.environ["BERTKIT_DATA_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "bertkit" / "data"


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise BertkitError(f"unknown data set {name!r}; registered: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def resolve(name: str, data_dir: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    """Local paths of every split of ``name``, downloading the missing ones."""
    spec = get_spec(name)
    folder = Path(data_dir) if data_dir else default_data_dir()
    paths = {}
    for split, remote in spec.splits.items():
        path = folder / name / remote.name
        if not path.exists():
            if not download:
                raise BertkitError(f"{path} is missing and downloads are off")
            fetch(remote, path)
        paths[split] = path
    return paths


def fetch(remote: RemoteFile, path: Path) -> None:
    """Download ``remote`` to ``path``, verifying its md5; nothing is left under ``path`` on failure."""
    log.info("downloading %s to %s", remote.url, path)
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(remote.url, timeout=60) as response, atomic_path(path) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                open(tmp, "wb") as out,
                tqdm(total=total, unit="B", unit_scale=True, desc=remote.name) as bar,
            ):
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if digest.hexdigest() != remote.md5:
                raise BertkitError(
                    f"{remote.url}: checksum mismatch (md5 {digest.hexdigest()}, "
                    f"expected {remote.md5}); the file was not saved"
                )
    except OSError as err:
        raise BertkitError(
            f"cannot download {remote.url}: {err}. Put the file at {path} by hand, or point "
            f"--data-dir / BERTKIT_DATA_DIR at a folder holding {path.parent.name}/"
        ) from err
