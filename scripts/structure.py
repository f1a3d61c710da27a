#!/usr/bin/env python3
"""Structure checks run with the test suite (issue 12's rules):

- no import cycle between the top-level modules of any crate (a module's
  `crate::X` paths outside comments and its `#[cfg(test)]` part);
- no function in `crates/*/src` over MAX_FN_LINES lines.

Rough by design (brace counting, not a Rust parser); it prints what it
finds and exits 1 on a violation.
"""
import pathlib
import re
import sys

MAX_FN_LINES = 100
ROOT = pathlib.Path(__file__).resolve().parent.parent
FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')


def code_of(line):
    line = re.sub(r'"([^"\\]|\\.)*"', '""', line)
    line = re.sub(r"'([^'\\]|\\.)'", "''", line)
    return line.split('//')[0]


def long_functions(src):
    found = []
    for path in sorted(src.rglob('*.rs')):
        lines = path.read_text(errors='replace').splitlines()
        for start, line in enumerate(lines):
            match = FN.match(line)
            if not match:
                continue
            depth, opened, end = 0, False, start
            while end < len(lines):
                code = code_of(lines[end])
                for ch in code:
                    if ch == '{':
                        depth, opened = depth + 1, True
                    elif ch == '}':
                        depth -= 1
                if opened and depth <= 0:
                    break
                if not opened and code.rstrip().endswith(';'):
                    break
                end += 1
            length = end - start + 1
            if opened and length > MAX_FN_LINES:
                found.append(f'{path.relative_to(ROOT)}:{start + 1} {match.group(6)} is {length} lines')
    return found


def module_cycles(src):
    edges = {}
    for path in src.rglob('*.rs'):
        module = path.relative_to(src).parts[0].removesuffix('.rs')
        if module in ('lib', 'main'):
            continue
        text = path.read_text(errors='replace').split('#[cfg(test)]')[0]
        text = '\n'.join(l for l in text.splitlines() if not l.lstrip().startswith('//'))
        for target in re.findall(r'crate::(\w+)', text):
            is_module = (src / f'{target}.rs').exists() or (src / target).is_dir()
            if target != module and is_module:
                edges.setdefault(module, set()).add(target)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in list(edges):
        if node not in index:
            visit(node)
    return cycles


def main():
    problems = []
    for src in sorted(ROOT.glob('crates/*/src')):
        crate = src.parent.name
        problems += [f'{crate}: import cycle between modules {c}' for c in module_cycles(src)]
        problems += long_functions(src)
    for problem in problems:
        print(problem)
    if problems:
        print(f'structure: {len(problems)} problem(s)')
        return 1
    print('structure: no import cycle, no function over', MAX_FN_LINES, 'lines')
    return 0


if __name__ == '__main__':
    sys.exit(main())
