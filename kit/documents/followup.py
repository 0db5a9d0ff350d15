"""The retrieval query of a conversation: a follow-up question is searched with what came before it.

"Et pour les stagiaires ?" after a question about telework means telework for interns: searched
alone, its one meaningful word finds anything about interns. When the last user message is short
(fewer than ``SELF_CONTAINED`` meaningful words), the earlier user messages of the conversation
(the most recent ``TURNS`` of them) are searched with it as its *context*: their words and their
vector count 0.3 times as much as the question's (``kit.documents.retrieve.CONTEXT_WEIGHT``), so the
question leads and the conversation says what it is about. A question that long carries its own
subject and is searched alone. No model is called; the assistant's answers are left out (they
repeat the sources, and may be wrong).
"""

from __future__ import annotations

from collections.abc import Sequence

from kit.documents.text import words

TURNS = 2
SELF_CONTAINED = 6


def conversation_query(user_messages: Sequence[str]) -> tuple[str, str]:
    """(question, context) to search for the last of ``user_messages`` (the user turns, oldest first)."""
    turns = [m.strip() for m in user_messages if m and m.strip()]
    if not turns:
        return "", ""
    last = turns[-1]
    if len(words(last)) >= SELF_CONTAINED or len(turns) == 1:
        return last, ""
    return last, "\n".join(turns[-1 - TURNS:-1])
