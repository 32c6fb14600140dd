"""TF Serving's ``models.config``: written from the models on disk, merged with a user's own.

The file is the text format of TF Serving's ``ModelServerConfig``. It is
written by hand rather than through TF Serving's proto: the format is three
string fields per model, and the proto's package (tensorflow-serving-api) is an
optional dependency. Entries of other models, hand-written ones with a version
policy included, are kept character for character when a model is added.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from magsr_tf.errors import MagsrError
from magsr_tf.inference.export import CONTAINER_MODELS_ROOT, MODELS_CONFIG, list_served_models
from magsr_tf.io.writers import write_text

logger = logging.getLogger(__name__)


def models_config_text(
    root: Path, base_path: str | None = CONTAINER_MODELS_ROOT, names: Sequence[str] | None = None
) -> str:
    """The text-format ``ModelServerConfig`` that lists the models under ``root``.

    Args:
        root: the models root (``saved_models``).
        base_path: prefix of each model's ``base_path``; the default ``/models``
            matches ``docker run -v $PWD/saved_models:/models tensorflow/serving``.
            ``None``: absolute local paths (for a natively installed server).
        names: restrict to these models (default: all with a SavedModel).
    """
    root = Path(root)
    models = list_served_models(root)
    if names is not None:
        missing = sorted(set(names) - set(models))
        if missing:
            raise MagsrError(f"no SavedModel under {root} for: {', '.join(missing)}")
        models = {n: models[n] for n in names}
    # Written by hand rather than through TF Serving's proto: the format is three
    # string fields per model, and the proto's package (tensorflow-serving-api) is
    # an optional dependency that a plain `pip install` does not bring. The text
    # is the one protobuf's text_format prints for the same message (tested).
    if not models:
        return ""
    lines = ["model_config_list {"]
    for name in models:
        if base_path is None:
            path = str((root / name).resolve())
        else:
            path = f"{base_path.rstrip('/')}/{name}"
        lines += [
            "  config {",
            f"    name: {_text_format_string(name)}",
            f"    base_path: {_text_format_string(path)}",
            '    model_platform: "tensorflow"',
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


_ESCAPES = {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
_ESCAPES.update({ord(c): "\\" + c for c in "\"'\\"})


def _text_format_string(value: str) -> str:
    """``value`` as a protobuf text-format string literal.

    The escaping of ``text_format.MessageToString``: quotes, backslash,
    ``\\n \\r \\t`` escaped, other ASCII control characters as three-digit
    octal, printable and non-ASCII characters as they are (UTF-8 file).
    """
    out = []
    for char in value:
        code = ord(char)
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\{code:03o}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


_TOKEN = re.compile(
    r"""(?P<space>\s+|\#[^\n]*)|(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)|(?P<punct>[{}:<>\[\],;])|(?P<other>[^\s{}:<>]+)"
)


def _tokens(text: str) -> list[tuple[str, str, int, int]]:
    """(kind, text, start, end) of the protobuf text format, comments and spaces dropped."""
    out = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind != "space":
            out.append((kind, match.group(), match.start(), match.end()))
    return out


def _unquote(literal: str) -> str:
    import ast

    try:
        return ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        return literal[1:-1]


def parse_models_config(text: str) -> tuple[str, list[tuple[str, str]], str]:
    """Splits a ``models.config`` into the text before its entries, the entries, the rest.

    Returns:
        ``(head, entries, tail)``: ``entries`` are ``(name, block)`` with each
        ``config { ... }`` block exactly as written (version policies, labels
        and comments inside kept); ``head`` ends with ``model_config_list {``
        and ``tail`` starts with its closing brace. An empty file gives a
        fresh list.

    Raises:
        MagsrError: the text is not a ``model_config_list`` of ``config`` blocks
            with a ``name`` each (unbalanced braces, another config kind).
    """
    toks = _tokens(text)
    if not toks:
        return "model_config_list {", [], "\n}\n"
    i = 0
    if toks[0][1] != "model_config_list":
        raise MagsrError("models.config does not start with model_config_list")
    i = 1 + (len(toks) > 1 and toks[1][1] == ":")
    if i >= len(toks) or toks[i][1] != "{":
        raise MagsrError("models.config: expected '{' after model_config_list")
    head_end = toks[i][3]
    i += 1
    entries = []
    last_end = head_end
    while i < len(toks) and toks[i][1] != "}":
        if toks[i][1] != "config":
            raise MagsrError(f"models.config: unexpected {toks[i][1]!r} in model_config_list")
        i += 1 + (i + 1 < len(toks) and toks[i + 1][1] == ":")
        if i >= len(toks) or toks[i][1] != "{":
            raise MagsrError("models.config: expected '{' after config")
        depth, name = 0, None
        while i < len(toks):
            tok = toks[i][1]
            if tok == "{":
                depth += 1
            elif tok == "}":
                depth -= 1
                if depth == 0:
                    break
            elif depth == 1 and tok == "name" and i + 2 < len(toks) and toks[i + 1][1] == ":":
                if toks[i + 2][0] == "str" and name is None:
                    name = _unquote(toks[i + 2][1])
            i += 1
        if i >= len(toks):
            raise MagsrError("models.config: unbalanced braces")
        if name is None:
            raise MagsrError("models.config: a config entry has no name")
        # Keep the indentation and comments before the block with it.
        entries.append((name, text[last_end : toks[i][3]]))
        last_end = toks[i][3]
        i += 1
    if i >= len(toks):
        raise MagsrError("models.config: model_config_list is not closed")
    return text[:head_end], entries, text[last_end:]


def check_models_config(root: Path) -> None:
    """Raises :class:`MagsrError` if ``root/models.config`` exists and cannot be merged into."""
    path = Path(root) / MODELS_CONFIG
    if path.is_file():
        try:
            parse_models_config(path.read_text(encoding="utf-8"))
        except MagsrError as exc:
            raise MagsrError(f"{path}: {exc}; fix or remove it") from None


def merge_models_config(
    root: Path, names: Sequence[str], base_path: str | None = CONTAINER_MODELS_ROOT
) -> Path:
    """Adds or replaces the entries of ``names`` in ``root/models.config``.

    Every other entry is kept exactly as written (a hand-written version
    policy included). Without a ``models.config`` yet, it lists every model
    under ``root``, as :func:`write_models_config`.

    Raises:
        MagsrError: the existing file cannot be parsed (see :func:`parse_models_config`).
    """
    root = Path(root)
    path = root / MODELS_CONFIG
    if not path.is_file():
        return write_models_config(root, base_path)
    try:
        head, entries, tail = parse_models_config(path.read_text(encoding="utf-8"))
    except MagsrError as exc:
        raise MagsrError(f"{path}: {exc}; fix or remove it") from None
    fresh = models_config_text(root, base_path, names)
    _, new_entries, _ = parse_models_config(fresh)
    new = dict(new_entries)
    kept = [(name, block) for name, block in entries if name not in new]
    replaced = [(name, new[name]) for name, _ in entries if name in new]
    added = [(name, block) for name, block in new_entries if name not in dict(entries)]
    order = {name: k for k, (name, _) in enumerate(entries)}
    merged = sorted(kept + replaced, key=lambda item: order[item[0]]) + added
    text = head + "".join(block for _, block in merged) + tail
    target = write_text(path, text)
    logger.info("updated %s (%s)", target, ", ".join(names))
    return target


def write_models_config(
    root: Path, base_path: str | None = CONTAINER_MODELS_ROOT, names: Sequence[str] | None = None
) -> Path:
    """Writes ``root/models.config`` for a TF Serving server (see :func:`models_config_text`).

    Returns:
        The config file path.
    """
    root = Path(root)
    if not root.is_dir():
        raise MagsrError(f"models root {root} does not exist")
    text = models_config_text(root, base_path, names)
    if not text.strip():
        logger.warning("no SavedModel under %s: models.config lists no model", root)
    target = write_text(root / MODELS_CONFIG, text)
    logger.info("wrote %s", target)
    return target
