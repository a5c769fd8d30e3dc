"""A safe YAML loader whose mappings remember the line of every key.

PyYAML's composer marks each node with its position; this loader copies those marks onto the
constructed containers (``LineMap.key_lines``, ``LineList.item_lines``) so that an error found
long after parsing can still name the line. It also refuses duplicate keys, which PyYAML would
silently collapse, and turns Ansible's ``!vault`` tag into a ``VaultValue`` marker so the
caller can refuse it by key name; ``!unsafe`` is read as plain text.
"""

from __future__ import annotations

from typing import Any

import yaml

from fleet_ecs.inventory.model import Source

_MERGE_TAG = "tag:yaml.org,2002:merge"


class LineMap(dict):  # type: ignore[type-arg]
    """A mapping with ``line`` (its own) and ``key_lines`` (key -> 1-based line)."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):  # type: ignore[type-arg]
    """A sequence with ``line`` and ``item_lines`` (one per item)."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.item_lines: list[int] = []


class VaultValue:
    """Stands for an encrypted ``!vault`` value; its text is never kept."""

    def __init__(self, line: int) -> None:
        self.line = line

    def __repr__(self) -> str:
        return "VaultValue(<redacted>)"


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


# libyaml's parser when present: the pure-Python one takes seconds on a 20,000-host file.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    pass


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> Any:
    data = LineMap()
    data.line = _line(node)
    yield data
    own = sum(1 for key, _ in node.value if key.tag != _MERGE_TAG)
    loader.flatten_mapping(node)
    # flatten_mapping puts merged pairs first; only the node's own keys may not repeat.
    merged = len(node.value) - own
    seen: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            ) from None
        if index >= merged:
            if key in seen:
                raise _DuplicateKey(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = _line(key_node)


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> Any:
    data = LineList()
    data.line = _line(node)
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_lines.append(_line(item))


def _construct_vault(loader: _LineLoader, node: yaml.Node) -> VaultValue:
    return VaultValue(_line(node))


def _construct_unsafe(loader: _LineLoader, node: yaml.Node) -> Any:
    # Ansible's !unsafe only stops templating, which fleet-ecs never does.
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    raise yaml.constructor.ConstructorError(None, None, "unexpected !unsafe node", node.start_mark)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_LineLoader.add_constructor("!vault", _construct_vault)
_LineLoader.add_constructor("!unsafe", _construct_unsafe)


def load_yaml(src: Source, text: str) -> Any:
    """Parse ``text``; a syntax error becomes one InventoryError with its line."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        kind = "" if isinstance(exc, _DuplicateKey) else "invalid YAML: "
        detail = " ".join(part for part in (exc.context, exc.problem) if part)
        raise src.error(f"{kind}{detail}", line=line) from None
    except yaml.YAMLError as exc:
        raise src.error(f"invalid YAML: {exc}") from None
