"""The code's layout stays easy to walk: no import cycle between the project's modules, the data
files never import the jobs nor the jobs the notifications, no module grows past 400 lines, and only the life cycle writes a
status."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("jobs", "datafiles", "jobsite", "notifications")
MAX_LINES = 400


def project_modules():
    """{dotted module name: path} of every module under the project's packages, migrations aside."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name, path, modules):
    """The project modules that `name` imports, at module level or inside a function alike."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph():
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    visiting, done = [], set()

    def visit(module):
        if module in visiting:
            return visiting[visiting.index(module):] + [module]
        if module in done:
            return None
        visiting.append(module)
        for imported in sorted(graph[module]):
            cycle = visit(imported)
            if cycle:
                return cycle
        visiting.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def test_no_module_imports_itself_through_others():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_relative_and_lazy_imports():
    graph = import_graph()
    assert "jobs.lifecycle" in graph["jobs.services.worker"]  # from .. import lifecycle
    assert "jobs.services.repair" in graph["jobs.broker"]  # inside a function


@pytest.mark.parametrize("lower,higher", [("datafiles", "jobs"), ("datafiles", "notifications"),
                                          ("jobs", "notifications")])
def test_a_package_never_imports_one_that_uses_it(lower, higher):
    graph = import_graph()
    reaching = {(module, imported) for module, imports in graph.items() if module.split(".")[0] == lower
                for imported in imports if imported.split(".")[0] == higher}
    assert reaching == set()


@pytest.mark.parametrize("name", sorted(project_modules()))
def test_no_module_is_over_400_lines(name):
    lines = len(project_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


def status_writes(path):
    """Lines of `path` that write a status: an update(...) or save with a `status` keyword."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("update", "bulk_update", "update_or_create")
                and any(keyword.arg == "status" for keyword in node.keywords)):
            found.append(node.lineno)
    return found


def test_only_the_life_cycle_writes_a_status():
    """Of jobs and tiles: notifications' deliveries have a status of their own."""
    writes = {name: lines for name, path in project_modules().items()
              if name != "jobs.lifecycle" and not name.startswith("notifications") and (lines := status_writes(path))}
    assert writes == {}


def test_the_status_scan_sees_a_write(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("Job.objects.filter(pk=1).update(status='failed')\nJob.objects.filter(status='x').count()\n")
    assert status_writes(sample) == [1]
