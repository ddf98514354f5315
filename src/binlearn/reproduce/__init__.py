"""The paper rows: docs/results.toml read as data (:mod:`~binlearn.reproduce.results`),
``binlearn reproduce`` (run a row at its published or scaled-down settings), and the
rendering of docs/results.md's tables and the overview figure from that file."""

__all__: list[str] = []
