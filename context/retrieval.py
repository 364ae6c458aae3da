"""Lexical retrieval (BM25) over short texts: playbook bullets, reference passages, demos.

BM25 in a few lines needs no index service or embedding model, is deterministic, and is a
strong baseline for keyword-heavy domain text (clause names, ratios, drug names).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from ax.errors import AxError

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens; the unit of lexical matching everywhere in ax.context."""
    return _WORD.findall(text.lower())


class BM25:
    """Okapi BM25 scores of a fixed list of texts for any query."""

    def __init__(self, texts: Sequence[str], *, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self.term_counts = [Counter(words(text)) for text in texts]
        self.lengths = [sum(counts.values()) for counts in self.term_counts]
        self.average_length = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        document_frequency = Counter(term for counts in self.term_counts for term in counts)
        n = len(self.term_counts)
        self.idf = {term: math.log(1 + (n - df + 0.5) / (df + 0.5)) for term, df in document_frequency.items()}

    def scores(self, query: str) -> list[float]:
        """One score per text, in the order given; 0.0 means no query word occurs in it."""
        terms = set(words(query)) & self.idf.keys()
        results = []
        for counts, length in zip(self.term_counts, self.lengths):
            norm = self.k1 * (1 - self.b + self.b * length / (self.average_length or 1.0))
            results.append(sum(
                self.idf[t] * counts[t] * (self.k1 + 1) / (counts[t] + norm) for t in terms if t in counts
            ))
        return results


class Document(BaseModel):
    """A passage of domain reference text; `id` is shown in the context so answers can cite it."""

    id: str
    text: str


def load_documents(directory: str | Path, *, chunk_words: int = 200) -> list[Document]:
    """Read *.md and *.txt files under `directory` (sorted) into passages of about `chunk_words`
    words, split at blank lines, so retrieval returns focused passages instead of whole files."""
    root = Path(directory)
    if not root.is_dir():
        raise AxError(f"reference documents directory {root} does not exist")
    documents = []
    for path in sorted(p for p in root.rglob("*") if p.suffix in {".md", ".txt"} and p.is_file()):
        paragraphs = [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
        for number, chunk in enumerate(_chunks(paragraphs, chunk_words)):
            documents.append(Document(id=f"{path.relative_to(root)}#{number}", text="\n\n".join(chunk)))
    return documents


def _chunks(paragraphs: list[str], chunk_words: int):
    """Group consecutive paragraphs while they fit in `chunk_words` (a longer paragraph stands alone)."""
    chunk: list[str] = []
    size = 0
    for paragraph in paragraphs:
        length = len(paragraph.split())
        if chunk and size + length > chunk_words:
            yield chunk
            chunk, size = [], 0
        chunk.append(paragraph)
        size += length
    if chunk:
        yield chunk
