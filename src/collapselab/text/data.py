"""Real sentences with ground truth, read from where system packages install them.

Nothing here is shipped with collapselab; each reader raises a
:class:`~collapselab.errors.ConfigError` saying what to install when its files are
absent.

- **WordNet 3.0** (Debian package ``wordnet-base``, files under ``/usr/share/wordnet``;
  Miller 1995): every synset with a usage example gives a (gloss, example) pair -- the
  definition and a sentence using the word -- about 20,000 pairs over nouns, verbs,
  adjectives and adverbs. Format: ``wndb(5WN)``, the gloss follows ``" | "``, examples
  are the double-quoted parts.
- **gensim's test data** (``pip install gensim``, ``gensim/test/test_data``): the Lee
  corpus (Lee, Pincombe & Welsh 2005): 50 news documents (``lee.cor``) with the mean
  human similarity rating of every pair (``similarities0-1.txt``, upper triangle) and 300
  background documents (``lee_background.cor``); SimLex-999 (``simlex999.txt``) and
  WordSim-353 (``wordsim353.tsv``) word pairs with human scores.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from collapselab.errors import ConfigError, InputError

#: where Debian's ``wordnet-base`` installs the database (override: COLLAPSELAB_WORDNET_DIR)
WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_POS = ("noun", "verb", "adj", "adv")
_QUOTED = re.compile(r'"([^"]+)"')


@dataclass(frozen=True)
class GlossPair:
    """One WordNet synset: its definition (``gloss``) and one usage ``example``."""

    gloss: str
    example: str
    lemma: str  #: the synset's first word, underscores as spaces
    pos: str  #: "noun", "verb", "adj" or "adv"
    offset: int  #: byte offset of the synset in data.<pos> (its WordNet id)


def wordnet_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The WordNet database folder (argument, ``$COLLAPSELAB_WORDNET_DIR``, or the default).

    Raises:
        ConfigError: no ``data.noun`` there.
    """
    root = Path(path or os.environ.get("COLLAPSELAB_WORDNET_DIR") or WORDNET_DIR)
    if not (root / "data.noun").is_file():
        raise ConfigError(
            f"{root}: no WordNet database (data.noun); install it with "
            "'apt-get install wordnet-base' or set COLLAPSELAB_WORDNET_DIR"
        )
    return root


def parse_wordnet_line(line: str, pos: str) -> GlossPair | None:
    """The (gloss, first example) of one ``data.<pos>`` line, or None without an example.

    Example line (abridged)::

        00003553 03 n 02 whole 0 unit 0 015 @ 00002684 n 0000 ... | an assemblage of
        parts that is regarded as a single entity; "how big is that part compared to the
        whole?"; "the team is a unit"
    """
    if line.startswith("  ") or " | " not in line:  # licence header lines start with 2 spaces
        return None
    head, _, text = line.partition(" | ")
    fields = head.split()
    quote = text.find('"')
    if quote < 0 or len(fields) < 5:
        return None
    gloss = text[:quote].strip().rstrip(";").strip()
    examples = [e.strip() for e in _QUOTED.findall(text[quote:]) if e.strip()]
    if not gloss or not examples:
        return None
    return GlossPair(gloss, examples[0], fields[4].replace("_", " "), pos, int(fields[0]))


def wordnet_pairs(
    path: str | os.PathLike[str] | None = None,
    pos: tuple[str, ...] = WORDNET_POS,
    min_example_words: int = 3,
) -> list[GlossPair]:
    """Every (gloss, example) pair of the WordNet database, in file order.

    Args:
        path: database folder (see :func:`wordnet_dir`).
        pos: parts of speech to read.
        min_example_words: skip examples shorter than this many words (``"payment is
            due"`` keeps, ``"callable bonds"`` goes), so an example is a sentence.

    Raises:
        ConfigError: the database is not installed. InputError: an unknown ``pos``.
    """
    root = wordnet_dir(path)
    out: list[GlossPair] = []
    for p in pos:
        if p not in WORDNET_POS:
            raise InputError(f"unknown part of speech {p!r}; expected one of {WORDNET_POS}")
        with open(root / f"data.{p}", encoding="latin-1") as f:
            for line in f:
                pair = parse_wordnet_line(line, p)
                if pair is not None and len(pair.example.split()) >= min_example_words:
                    out.append(pair)
    return out


def gensim_test_data(path: str | os.PathLike[str] | None = None) -> Path:
    """The folder of gensim's bundled test data, found without importing gensim.

    Raises:
        ConfigError: gensim is not installed (and no ``path`` given).
    """
    if path is not None:
        root = Path(path)
    else:
        spec = importlib.util.find_spec("gensim")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError("gensim is not installed; 'pip install gensim' for the Lee corpus, "
                              "SimLex-999 and WordSim-353")  # fmt: skip
        root = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data"
    if not (root / "lee.cor").is_file():
        raise ConfigError(f"{root}: no gensim test data (lee.cor)")
    return root


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="latin-1") as f:  # the Lee files hold a few latin-1 bytes
        return [line.strip() for line in f if line.strip()]


@dataclass(frozen=True)
class LeeCorpus:
    """The Lee-50 documents and the mean human rating of each pair.

    Attributes:
        documents: the 50 documents, file order.
        similarity: ``(50, 50)`` symmetric, ratings in [0, 1], ones on the diagonal.
    """

    documents: list[str]
    similarity: NDArray[np.float64]


def lee_corpus(path: str | os.PathLike[str] | None = None) -> LeeCorpus:
    """Read ``lee.cor`` and ``similarities0-1.txt`` (upper triangle, made symmetric)."""
    root = gensim_test_data(path)
    docs = _read_lines(root / "lee.cor")
    upper = np.triu(np.loadtxt(root / "similarities0-1.txt", dtype=np.float64))
    sim = upper + np.triu(upper, 1).T
    if len(docs) != sim.shape[0] or sim.shape[0] != sim.shape[1]:
        raise InputError(f"{root}: {len(docs)} Lee documents but ratings of shape {sim.shape}")
    return LeeCorpus(docs, sim)


def lee_background(path: str | os.PathLike[str] | None = None) -> list[str]:
    """The 300 background documents of the Lee corpus (``lee_background.cor``)."""
    return _read_lines(gensim_test_data(path) / "lee_background.cor")


def word_pairs(
    name: str, path: str | os.PathLike[str] | None = None
) -> list[tuple[str, str, float]]:
    """Word pairs with human scores: ``"simlex999"`` or ``"wordsim353"``.

    Returns:
        ``(word1, word2, score)`` in file order (comment lines starting ``#`` skipped).
    """
    files = {"simlex999": "simlex999.txt", "wordsim353": "wordsim353.tsv"}
    if name not in files:
        raise InputError(f"unknown word-pair set {name!r}; expected one of {sorted(files)}")
    out = []
    for line in _read_lines(gensim_test_data(path) / files[name]):
        if line.startswith("#"):
            continue
        a, b, score = line.split("\t")[:3]
        out.append((a, b, float(score)))
    return out
