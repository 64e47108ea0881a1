"""The YAML loader for flow documents: libyaml's C parser, YAML 1.2 core scalars, and ``!inline``.

Why not plain ``yaml.safe_load``: Windmill's CLI reads ``flow.yaml`` with a YAML 1.2 parser, where
``yes``/``no``/``on``/``off`` are strings, ``1:30`` is not a base-60 number and ``2024-01-01`` stays a
string. PyYAML implements YAML 1.1 and would silently change such values (and produce ``datetime``
objects that are not JSON). We keep the C parser and swap in the 1.2 core-schema resolvers.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from airflow_openflow.spec.bounds import (
    MAX_DEPTH,
    DocumentTooComplexError,
    check_size,
    yaml_depth_exceeds,
    yaml_may_be_too_deep,
)

try:  # libyaml is much faster; fall back only when PyYAML was built without it
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

INLINE_PREFIX = "!inline "


class FlowYamlLoader(_BaseLoader):
    """Safe loader with YAML 1.2 core-schema implicit types and an ``!inline <file>`` tag."""

    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.alias_uses = 0  # how often an already built node was reused: aliases (spec/bounds.py)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node in self.constructed_objects:
            self.alias_uses += 1
        return super().construct_object(node, deep=deep)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Windmill's YAML parser refuses duplicate keys; PyYAML would keep the last one silently.
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], yaml.Node] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                first = seen.setdefault((key_node.tag, key_node.value), key_node)
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        f"while reading the mapping that starts at line {node.start_mark.line + 1}",
                        first.start_mark,
                        f"found duplicate key {key_node.value!r} (first at line {first.start_mark.line + 1}, "
                        f"again at line {key_node.start_mark.line + 1}); keep only one",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        # 1.2 core: decimal (leading zeros are decimal), 0o octal, 0x hex; no '_' and no base 60.
        text = str(self.construct_scalar(node))
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)


def _resolver(tag: str, pattern: str, first: str) -> None:
    FlowYamlLoader.add_implicit_resolver(tag, re.compile(pattern), list(first))


_resolver("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_resolver("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789")
_resolver(
    "tag:yaml.org,2002:float",
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    "-+0123456789.",
)
FlowYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_resolver("tag:yaml.org,2002:merge", r"^(?:<<)$", "<")
FlowYamlLoader.add_constructor("tag:yaml.org,2002:int", FlowYamlLoader.construct_yaml_int)


def _construct_inline(loader: yaml.BaseLoader, node: yaml.Node) -> str:
    # Unquoted ``content: !inline a.py`` is a YAML tag: give it the same form as the quoted string.
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(None, None, "!inline expects a file name", node.start_mark)
    return INLINE_PREFIX + str(loader.construct_scalar(node)).strip()


FlowYamlLoader.add_constructor("!inline", _construct_inline)


def load_yaml(text: str) -> Any:
    """Parse one YAML document (raises ``yaml.YAMLError``, or :class:`DocumentTooComplexError`
    for a document nested too deeply or expanding to too much through aliases)."""
    if yaml_may_be_too_deep(text):
        line = yaml_depth_exceeds(text, FlowYamlLoader)
        if line is not None:  # before composing: libyaml's composer would overflow the C stack
            raise DocumentTooComplexError(
                f"the document nests lists and objects deeper than {MAX_DEPTH} levels", line=line
            )
    loader = FlowYamlLoader(text)  # derives from the safe loader
    try:
        node = loader.get_single_node()
        try:
            data, aliased = _PlainNodes(loader).document(node)
        except _NotPlain:  # PyYAML's constructor, for its errors and the tags we do not build
            data = loader.construct_document(node) if node is not None else None
            aliased = loader.alias_uses > 0
    finally:
        loader.dispose()
    if aliased:
        check_size(data)
    return data


class _NotPlain(Exception):
    """The document uses something :class:`_PlainNodes` leaves to PyYAML's constructor."""


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOLS = {"true": True, "false": False}
_KEY_TYPES = (str, int, float, type(None))  # bool is an int


class _PlainNodes:
    """Builds the value of a composed node tree made of mappings, sequences and the 1.2 core
    scalars, as ``FlowYamlLoader`` would, three times as fast: PyYAML's constructor pays for
    generality (generators for recursive structures, a lookup per node) that a flow never uses.

    Anything else (another tag, a merge key ``<<``, a duplicate or unhashable key) raises
    :class:`_NotPlain`, and the caller builds the document with PyYAML's constructor, which gives
    the same value or the error with its line. Recursion is bounded: the document's depth was
    checked before composing (``spec/bounds.py``)."""

    def __init__(self, loader: FlowYamlLoader) -> None:
        self.loader = loader
        self.built: dict[int, Any] = {}  # id(node) -> value: an alias is the same node again
        self.aliased = False

    def document(self, node: yaml.Node | None) -> tuple[Any, bool]:
        return (None if node is None else self.value(node)), self.aliased

    def value(self, node: yaml.Node) -> Any:
        seen = self.built.get(id(node), self)
        if seen is not self:
            self.aliased = True
            return seen
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            value = self.scalar(node, tag)
        elif tag == _MAP and isinstance(node, yaml.MappingNode):
            mapping: dict[Any, Any] = {}
            self.built[id(node)] = mapping
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _NotPlain
                key = self.value(key_node)
                if not isinstance(key, _KEY_TYPES) or key in mapping:
                    raise _NotPlain  # a duplicate key: PyYAML's constructor says where
                mapping[key] = self.value(value_node)
            return mapping
        elif tag == _SEQ and isinstance(node, yaml.SequenceNode):
            sequence: list[Any] = []
            self.built[id(node)] = sequence
            sequence.extend(self.value(item) for item in node.value)
            return sequence
        else:
            raise _NotPlain
        self.built[id(node)] = value
        return value

    def scalar(self, node: yaml.ScalarNode, tag: str) -> Any:
        if tag == _STR:
            return node.value
        if tag == _NULL:
            return None
        if tag == _BOOL:
            if node.value.lower() not in _BOOLS:
                raise _NotPlain
            return _BOOLS[node.value.lower()]
        if tag == _INT:
            return self.loader.construct_yaml_int(node)
        if tag == _FLOAT:
            return self.loader.construct_yaml_float(node)
        if tag == "!inline":
            return INLINE_PREFIX + str(node.value).strip()  # as _construct_inline
        raise _NotPlain
