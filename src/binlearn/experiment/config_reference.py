"""The configuration reference (docs/reference/config.md), rendered from the config dataclasses.

Every key of every section, with its type, default, bounds (the :class:`~binlearn.experiment.config.Bounds`
declared with the field by :func:`~binlearn.experiment.config.setting`), what ``--resume`` and
``binlearn eval --set`` may do with it, and its description (the string literal under the field,
read from the source). The page cannot drift: ``tests/docs/test_reference_pages.py`` renders it
again and compares (``python -m binlearn.reference_pages`` rewrites it).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
import typing
from typing import Any

from binlearn.experiment import learners  # noqa: F401  (registers every model kind and rule)
from binlearn.experiment.config import (
    FLOAT32_MAX,
    MODEL_CONFIGS,
    OPTIMIZER_CONFIGS,
    RESUME_EPOCHS,
    RESUME_FREE,
    RESUME_NEXT_EPOCH,
    RESUME_REFUSED,
    RESUME_SCHEDULE,
    RULE_CONFIGS,
    Bounds,
    DataConfig,
    ScheduleConfig,
    TrainConfig,
)

__all__ = ["render_config_reference", "field_docs", "bounds_text", "markdown"]

_RESUME_TEXT = {
    RESUME_REFUSED: "refused",
    RESUME_FREE: "free",
    RESUME_NEXT_EPOCH: "next epoch",
    RESUME_SCHEDULE: "schedule",
    RESUME_EPOCHS: "raise only",
}


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the string literal written under it in the class body (its own and its bases'),
    read with :mod:`ast` (Python keeps no such attribute docstrings at run time)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass.__module__.startswith("builtins"):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        statements = body.body
        for statement, following in zip(statements, statements[1:], strict=False):
            if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    mantissa, exponent = f"{value:g}".partition("e")[::2]
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|obj):`~?([\w.]+)`")


def markdown(text: str) -> str:
    """A docstring's reStructuredText inline markup as markdown: ``x`` -> `x`, :class:`~a.B` -> `B`."""
    text = _ROLE.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`" if "~" in m.group(0)
                     else f"`{m.group(1)}`", text)
    return text.replace("``", "`")


def bounds_text(bounds: Bounds | None) -> str:
    """A field's bounds in words: "≥ 1", "in (0, 1]", "one of ...", "" when none are declared."""
    if bounds is None:
        return ""
    parts = []
    low = (f"[{_number(bounds.ge)}" if bounds.ge is not None
           else f"({_number(bounds.gt)}" if bounds.gt is not None else None)
    high = (f"{_number(bounds.le)}]" if bounds.le is not None
            else f"{_number(bounds.lt)})" if bounds.lt is not None else None)
    if low and high:
        parts.append(f"in {low}, {high}")
    elif low:
        parts.append(("≥ " if bounds.ge is not None else "> ") + low[1:])
    elif high:
        parts.append(("≤ " if bounds.le is not None else "< ") + high[:-1])
    if bounds.choices is not None:
        parts.append("one of " + ", ".join(f"`{choice}`" for choice in bounds.choices))
    if bounds.pattern is not None:
        parts.append(bounds.pattern_help or f"matching `{bounds.pattern}`")
    if bounds.nonempty:
        parts.append("not empty")
    return "; ".join(parts)


def _type_text(tp: Any) -> str:
    if tp is type(None):
        return "unset"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        return " or ".join(_type_text(option) for option in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list of {_type_text(args[0])}" if args else "list"
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _toml(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(item: dataclasses.Field) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return None


def _section_table(cls: type, section: str, skip: tuple[str, ...] = ()) -> list[str]:
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    lines = ["| key | type | default | bounds | `--resume` | `eval --set` | meaning |",
             "|---|---|---|---|---|---|---|"]
    for item in dataclasses.fields(cls):
        if not item.init or item.name in skip:
            continue
        bounds = item.metadata.get("bounds")
        resume = _RESUME_TEXT[item.metadata.get("resume", RESUME_REFUSED)]
        evaluation = "yes" if item.metadata.get("evaluation") else ""
        lines.append("| " + " | ".join([
            f"`{section}.{item.name}`", _type_text(hints[item.name]), f"`{_toml(_default(item))}`",
            _cell(bounds_text(bounds)), resume, evaluation, _cell(markdown(docs.get(item.name, ""))),
        ]) + " |")
    return lines


def _class_doc(cls: type) -> str:
    doc = cls.__dict__.get("__doc__") or ""
    if not doc or doc.startswith(f"{cls.__name__}("):  # the dataclass's generated signature
        return ""
    return inspect.cleandoc(doc)


def _block(heading: str, cls: type, section: str, intro: str = "", skip: tuple[str, ...] = ()) -> list[str]:
    lines = [heading, ""]
    if intro:
        lines += [intro, ""]
    doc = _class_doc(cls)
    if doc:
        lines += [markdown(doc), ""]
    lines += [f"Dataclass: `{cls.__module__}.{cls.__qualname__}`.", ""]
    return lines + _section_table(cls, section, skip) + [""]


def render_config_reference() -> str:
    """The generated part of docs/reference/config.md (markdown, ending in a newline)."""
    lines = [
        "## Top level", "",
        "| key | type | default | bounds | `--resume` | `eval --set` | meaning |",
        "|---|---|---|---|---|---|---|",
        "| `name` | string or unset | `unset` |  | free |  | names the run directory (`runs/NAME-TIME`) |",
        "| `seed` | int | `0` | in [0, 2^63) | refused |  | every random stream of the run |",
        "",
    ]
    lines += _block("## `[data]`", DataConfig, "data")
    lines += ["## `[model]`", "", "`model.kind` selects the dataclass; the other keys belong to that kind "
              f"(default kind: `mlp`). Kinds: {', '.join(f'`{k}`' for k in sorted(MODEL_CONFIGS))}.", ""]
    for kind in sorted(MODEL_CONFIGS):
        lines += _block(f"### `kind = \"{kind}\"`", MODEL_CONFIGS[kind], "model")
    lines += ["## `[rule]`", "", "`rule.name` selects the estimator; the other keys belong to it "
              f"(default rule: `ste`). Rules: {', '.join(f'`{k}`' for k in sorted(RULE_CONFIGS))}. "
              "Rules with an optimizer ("
              + ", ".join(f"`{k}`" for k in sorted(OPTIMIZER_CONFIGS))
              + ") also take `[optimizer]` and `[schedule]`; the others refuse both sections.", ""]
    for name in sorted(RULE_CONFIGS):
        lines += _block(f"### `name = \"{name}\"`", RULE_CONFIGS[name], "rule")
    lines += ["## `[optimizer]`", "", "The dataclass follows `rule.name`.", ""]
    by_class: dict[type, list[str]] = {}
    for name in sorted(OPTIMIZER_CONFIGS):
        by_class.setdefault(OPTIMIZER_CONFIGS[name], []).append(name)
    for cls, names in by_class.items():
        rules = " and ".join(f"`{name}`" for name in names)
        lines += _block(f"### rules {rules}" if len(names) > 1 else f"### rule {rules}", cls, "optimizer")
    lines += _block("## `[schedule]`", ScheduleConfig, "schedule")
    lines += _block("## `[train]`", TrainConfig, "train")
    lines += [
        "Every float is also refused when it is not finite or exceeds the float32 range "
        f"(|x| ≤ {FLOAT32_MAX:.4g}); every integer must fit in 64 bits.",
    ]
    return "\n".join(lines) + "\n"
