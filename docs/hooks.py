"""MkDocs hook: the docstrings' reStructuredText roles (:class:`~binlearn.X`, :func:`f`) as code.

mkdocstrings renders the docstrings as markdown, where ``:class:`~a.B``` would show its role
and tilde literally; this turns each into the code span of the name (``B`` for ``~a.B``).
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|obj|exc|const):<code>(~?)([\w.]+)</code>")


def on_page_content(html: str, **kwargs) -> str:
    return _ROLE.sub(lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>",
                     html)
