"""A YAML file read with its line numbers kept, so every error names the line of the field it is about.

PyYAML's ``compose`` gives the node tree with marks; the values are built from the same nodes (safe types only).
"""

from dataclasses import dataclass
from pathlib import Path

import yaml


class FileError(Exception):
    """A problem in the file, at a line (1-based; 0 where there is no line to name)."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.line = line


@dataclass
class YamlDocument:
    path: str
    data: object
    root: yaml.Node | None

    def line_of(self, location: str | list) -> int:
        """The line of the deepest node a dotted location (``routes.chat.v1.variants.0.weight``) reaches; keys may
        hold dots themselves (route names do), so the longest key that matches wins."""
        tokens = location.split(".") if isinstance(location, str) else [str(t) for t in location]
        node = self.root
        line = node.start_mark.line + 1 if node is not None else 0
        while tokens and node is not None:
            node, used = _child(node, tokens)
            if node is None:
                break
            tokens = tokens[used:]
            line = node.start_mark.line + 1
        return line

    def error(self, location: str | list, message: str) -> FileError:
        return FileError(self.path, self.line_of(location), message)


def _child(node: yaml.Node, tokens: list[str]) -> tuple[yaml.Node | None, int]:
    if isinstance(node, yaml.MappingNode):
        keys = {str(k.value): (k, v) for k, v in node.value}
        for used in range(len(tokens), 0, -1):
            found = keys.get(".".join(tokens[:used]))
            if found is not None:
                # The key's own line when the value spans several lines below it.
                key, value = found
                return (value if isinstance(value, yaml.ScalarNode) else key) if used == len(tokens) else value, used
        return None, 0
    if isinstance(node, yaml.SequenceNode) and tokens[0].isdigit() and int(tokens[0]) < len(node.value):
        return node.value[int(tokens[0])], 1
    return None, 0


def _check_duplicate_keys(path: str, node: yaml.Node | None) -> None:
    """PyYAML keeps the last of two equal keys silently; a configuration file must not mean something else quietly."""
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key, value in node.value:
            if key.value in seen:
                raise FileError(path, key.start_mark.line + 1, f"duplicate key {key.value!r}")
            seen.add(key.value)
            _check_duplicate_keys(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(path, item)


def load(path: Path) -> YamlDocument:
    try:
        text = path.read_text()
    except OSError as exc:
        raise FileError(str(path), 0, f"cannot read it ({exc.strerror})") from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            _check_duplicate_keys(str(path), root)
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise FileError(str(path), line, f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise FileError(str(path), 0, f"not valid YAML: {exc}") from None
    return YamlDocument(str(path), data, root)


def dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)
