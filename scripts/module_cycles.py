#!/usr/bin/env python3
"""Finds files that import each other, directly or around a loop, in every
crate of the workspace: no two files may import each other.

For each crate target (lib, bins, tests, benches) the module tree is read by
following `mod name;` declarations from the target's root file. A file F
imports a file G when F names (in a `use`, a path in code, or a re-export)
an item that G defines or a module that G is: `crate::a::b`, `super::x`,
`self::y`, and `{…}` groups are resolved against that tree, a re-export
(`pub use other::Item`) is followed to where the item is defined, and paths
inside an inline `mod tests { … }` are resolved from the file's own module.
Comments and string literals are ignored. Edges from a module to its own
submodule declarations (`mod x;`) are not imports.

Prints every cycle (as a list of files) and exits 1 if there is one;
`--graph` prints every edge too.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
ROOT = Path(__file__).resolve().parent.parent


def strip_comments_and_strings(text: str) -> str:
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not re.match(r"\w", text[i - 1])):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            out.append('""')
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Crate:
    def __init__(self, root_file: Path):
        self.modules: dict[tuple[str, ...], Path] = {}
        self.texts: dict[Path, str] = {}
        self.load(root_file, ())

    def load(self, file: Path, path: tuple[str, ...]) -> None:
        if file in self.texts or not file.exists():
            return
        self.modules[path] = file
        text = strip_comments_and_strings(file.read_text())
        self.texts[file] = text
        # The directory a file's `mod x;` children live in.
        if file.name in ("lib.rs", "main.rs", "mod.rs") or path == ():
            base = file.parent
        else:
            base = file.parent / file.stem
        for name in self.declared_file_modules(text):
            for candidate in (base / f"{name}.rs", base / name / "mod.rs"):
                if candidate.exists():
                    self.load(candidate, path + (name,))
                    break

    @staticmethod
    def declared_file_modules(text: str) -> list[str]:
        names, depth = [], 0
        for token in re.finditer(r"[{}]|\bmod\s+(" + IDENT + r")\s*;", text):
            if token.group(0) == "{":
                depth += 1
            elif token.group(0) == "}":
                depth -= 1
            elif depth == 0:
                names.append(token.group(1))
        return names

    def file_module(self, file: Path) -> tuple[str, ...]:
        return next(path for path, f in self.modules.items() if f == file)

    def resolve(self, segments: list[str], seen: int = 0) -> Path | None:
        """The file that defines what an absolute path (from the crate root) names."""
        module: tuple[str, ...] = ()
        rest = list(segments)
        while rest and module + (rest[0],) in self.modules:
            module += (rest.pop(0),)
        file = self.modules.get(module)
        if file is None or not rest or seen > 8:
            return file
        # A re-export or alias in that module: follow it to its origin.
        text = self.texts[file]
        name = rest[0]
        for use in re.finditer(r"\buse\s+([^;]+);", text):
            for target in expand(use.group(1)):
                alias = target[-1]
                if " as " in alias:
                    original, alias = [s.strip() for s in alias.split(" as ")]
                    target = target[:-1] + [original]
                if alias != name:
                    continue
                absolute = absolutize(target, module, self)
                if absolute is None:
                    return None  # another crate's item
                return self.resolve(absolute + rest[1:], seen + 1)
        if re.search(r"\b(?:struct|enum|union|fn|trait|type|const|static|macro_rules!)\s+" + re.escape(name) + r"\b", text):
            return file
        # Brought in by a glob: from this crate, follow it; from another, no edge.
        for glob in re.finditer(r"\buse\s+([\w:]+)::\*\s*;", text):
            absolute = absolutize(glob.group(1).split("::"), module, self)
            if absolute is not None and tuple(absolute) in self.modules:
                return self.resolve(absolute + rest, seen + 1)
        if re.search(r"\buse\s+[\w:]+::\*\s*;", text):
            return None
        return file


def expand(tree: str) -> list[list[str]]:
    """`a::{b, c::{d, e as f}}` → [[a, b], [a, c, d], [a, c, e as f]]."""
    tree = " ".join(tree.split())
    depth, start, parts = 0, 0, []
    brace = tree.find("{")
    if brace < 0:
        return [[s.strip() for s in tree.split("::") if s.strip()]]
    prefix = [s for s in tree[:brace].split("::") if s.strip()]
    inner = tree[brace + 1: tree.rfind("}")]
    for i, c in enumerate(inner):
        depth += c == "{"
        depth -= c == "}"
        if c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    result = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if part == "self":
            result.append([s.strip() for s in prefix])
            continue
        for tail in expand(part):
            result.append([s.strip() for s in prefix] + tail)
    return result


def absolutize(path: list[str], module: tuple[str, ...], crate: Crate) -> list[str] | None:
    """A path as seen from `module`, from the crate root; None if it leaves the crate."""
    if not path:
        return None
    if path[0] == "crate":
        return path[1:]
    if path[0] in ("self", "super"):
        here = list(module)
        while path and path[0] in ("self", "super"):
            if path.pop(0) == "super":
                if not here:
                    return None
                here.pop()
        return here + path
    # A child module of this one, or something in scope from elsewhere.
    if tuple(module) + (path[0],) in crate.modules:
        return list(module) + path
    return None


REFERENCE = re.compile(
    r"\b(?:crate|super|self)(?:::(?:super|self))*::(?:\{[^;]*?\}|" + IDENT + r"(?:::" + IDENT + r")*(?:::\{[^;]*?\})?)"
)


def imports_of(crate: Crate, file: Path) -> set[Path]:
    text = crate.texts[file]
    module = crate.file_module(file)
    found: set[Path] = set()
    # Paths through a child module, `child::Item` (in a `use` or in code).
    children = [path[-1] for path in crate.modules if path[:-1] == module and path]
    if children:
        child_reference = re.compile(
            r"(?<![\w:])(?:" + "|".join(map(re.escape, children)) + r")::(?:\{[^;]*?\}|" + IDENT + r"(?:::" + IDENT + r")*)"
        )
        for match in child_reference.finditer(text):
            if inline_depth(text, [m.end() for m in re.finditer(r"\bmod\s+" + IDENT + r"\s*\{", text)], match.start()):
                continue
            for path in expand(match.group(0)):
                path = [p.split(" as ")[0].strip() for p in path]
                target = crate.resolve(list(module) + path)
                if target is not None and target != file:
                    found.add(target)
    # Where inline `mod name {` blocks open and close, to resolve their
    # `super::` from the file's own module.
    inline_opens = [m.end() for m in re.finditer(r"\bmod\s+" + IDENT + r"\s*\{", text)]
    for match in REFERENCE.finditer(text):
        depth = inline_depth(text, inline_opens, match.start())
        reference = match.group(0)
        for path in expand(reference):
            path = [p.split(" as ")[0].strip() for p in path]
            if depth and path and path[0] == "super":
                # `super` of an inline module inside this file.
                path = ["self"] + path[depth:] if all(p == "super" for p in path[:depth]) else path
            absolute = absolutize(path, module, crate)
            if absolute is None:
                continue
            target = crate.resolve(absolute)
            if target is not None and target != file:
                found.add(target)
    return found


def inline_depth(text: str, opens: list[int], position: int) -> int:
    depth = 0
    for start in opens:
        if start > position:
            break
        # Find the block's end by counting braces from its opening.
        level, i = 1, start
        while i < len(text) and level:
            level += text[i] == "{"
            level -= text[i] == "}"
            i += 1
        if position < i:
            depth += 1
    return depth


def target_roots(crate_dir: Path) -> list[Path]:
    roots = []
    for name in ("src/lib.rs", "src/main.rs"):
        if (crate_dir / name).exists():
            roots.append(crate_dir / name)
    for pattern in ("src/bin/*.rs", "src/bin/*/main.rs", "tests/*.rs", "benches/*.rs"):
        roots.extend(sorted(crate_dir.glob(pattern)))
    return roots


def cycles(graph: dict[Path, set[Path]]) -> list[list[Path]]:
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node: Path) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in list(graph):
        if node not in index:
            visit(node)
    return result


def main() -> int:
    show_graph = "--graph" in sys.argv
    manifests = [
        m for m in ROOT.rglob("Cargo.toml")
        if "target" not in m.parts and ".git" not in m.parts and "[package]" in m.read_text()
    ]
    found, files, edges = [], 0, 0
    for manifest in sorted(manifests):
        for root in target_roots(manifest.parent):
            crate = Crate(root)
            graph = {file: imports_of(crate, file) for file in crate.texts}
            files += len(graph)
            edges += sum(len(targets) for targets in graph.values())
            if show_graph:
                for file, targets in sorted(graph.items()):
                    for target in sorted(targets):
                        print(f"{file.relative_to(ROOT)} -> {target.relative_to(ROOT)}")
            for cycle in cycles(graph):
                if cycle not in found:
                    found.append(cycle)
    for cycle in found:
        print("import cycle: " + " <-> ".join(str(f.relative_to(ROOT)) for f in cycle), file=sys.stderr)
    print(f"module_cycles: {files} files, {edges} import edges, {len(found)} cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
