"""Small stand-ins for lb on a target and for lb's dfaas playbooks, built
in a test's directory.

`make_lb_workdir` lays out what lb's setup.yml leaves in `lb_workdir`: a
`.venv/bin/python` (a real python) and an `lb_plugins` package whose
`api.create_registry()` resolves plugin names the way lb's registry does:
the built-in `lb_plugins.plugins.dfaas.plugin`, then every user plugin
directory `lb_plugins/plugins/_user/<dir>/`, whose entry module is the
first of `<dir>/__init__.py`, `<dir>/plugin.py`, `<dir>/<dir>.py`, then
`<dir>/<sub>/plugin.py` or `<dir>/<sub>/__init__.py`, imported under its
dotted path below `<dir>` (`lb_dfaas_plugin.plugin`), the last
registration of a name winning. The user plugin is the project's real
package `integrations/lb/lb_dfaas_plugin/`, installed as `lb-dfaas
lb-install` installs it, with or without a `bin/lb-dfaas`.

`make_lb_dfaas_playbooks` lays out a directory shaped like lb's
`lb_plugins/plugins/dfaas/ansible` whose `setup_target.yml` records, per
host it runs on, what it was given instead of installing k3s.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LB_PLUGIN_PACKAGE = REPO / "integrations" / "lb" / "lb_dfaas_plugin"

_API = '''\
import importlib
import importlib.util
import sys
import types
from pathlib import Path


def _entry(directory):
    for candidate in (directory / "__init__.py", directory / "plugin.py", directory / (directory.name + ".py")):
        if candidate.is_file():
            return candidate
    for sub in sorted(directory.iterdir()):
        if sub.is_dir() and not sub.name.startswith((".", "_", "tests")):
            for candidate in (sub / "plugin.py", sub / "__init__.py"):
                if candidate.is_file():
                    return candidate
    return None


def _load(directory, entry):
    parts = list(entry.relative_to(directory).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    name = ".".join(parts) or entry.stem
    for depth in range(1, len(parts)):
        package = ".".join(parts[:depth])
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(directory.joinpath(*parts[:depth]))]
            sys.modules[package] = module
    is_package = entry.name == "__init__.py"
    spec = importlib.util.spec_from_file_location(
        name, entry, submodule_search_locations=[str(entry.parent)] if is_package else None
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return getattr(module, "PLUGINS", None) or [module.PLUGIN]


class Registry:
    def __init__(self):
        self._plugins = {}
        self.register(importlib.import_module("lb_plugins.plugins.dfaas.plugin").PLUGIN)
        user = Path(__file__).resolve().parent / "plugins" / "_user"
        for directory in sorted(user.iterdir()) if user.is_dir() else []:
            entry = _entry(directory) if directory.is_dir() and not directory.name.startswith("_") else None
            for plugin in _load(directory, entry) if entry is not None else []:
                self.register(plugin)

    def register(self, plugin):
        self._plugins[plugin.name] = plugin

    def get(self, name):
        if name not in self._plugins:
            raise KeyError(f"Workload Plugin '{name}' not found")
        return self._plugins[name]


def create_registry(refresh=False):
    return Registry()
'''

_BUILTIN = '''\
class DfaasPlugin:
    """Stands in for lb's built-in Python dfaas plugin."""

    name = "dfaas"

    def create_generator(self, config):
        raise NotImplementedError


PLUGIN = DfaasPlugin()
'''

BINARY_OK = '#!/bin/sh\nprintf \'{"name": "dfaas", "version": "1.2.3", "playbooks": {}}\\n\'\n'
BINARY_BROKEN = "#!/bin/sh\necho 'lb-dfaas: cannot execute: wrong architecture' >&2\nexit 126\n"


def _write(path: Path, text: str, executable: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def make_lb_workdir(root: Path, *, lb_dfaas_plugin: bool, binary: str | None = None) -> Path:
    """An lb_workdir; `binary` is None (absent), BINARY_OK or BINARY_BROKEN."""
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    os.symlink(sys.executable, venv_bin / "python")
    package = root / "lb_plugins"
    _write(package / "__init__.py", "")
    _write(package / "api.py", _API)
    _write(package / "plugins" / "__init__.py", "")
    _write(package / "plugins" / "dfaas" / "__init__.py", "")
    _write(package / "plugins" / "dfaas" / "plugin.py", _BUILTIN)
    (package / "plugins" / "_user").mkdir()
    if lb_dfaas_plugin:
        installed = package / "plugins" / "_user" / "lb_dfaas_plugin"
        installed.mkdir()
        shutil.copytree(
            LB_PLUGIN_PACKAGE, installed / "lb_dfaas_plugin", ignore=shutil.ignore_patterns("__pycache__")
        )
        if binary is not None:
            _write(installed / "bin" / "lb-dfaas", binary, executable=True)
    return root


def installed_plugin_file(lb_workdir: Path) -> Path:
    """The module lb's registry names for the installed plugin."""
    return lb_workdir / "lb_plugins" / "plugins" / "_user" / "lb_dfaas_plugin" / "lb_dfaas_plugin" / "plugin.py"


_SETUP_TARGET = '''\
---
# Stands in for lb's setup_target.yml: same play header, and instead of
# k3s/OpenFaaS/Prometheus it records what it was given, per host.
- name: Install k3s, OpenFaaS, Prometheus, and exporters
  hosts: all
  become: true
  gather_facts: true
  vars_files:
    - vars/target.yml
  vars:
    openfaas_functions: []
  tasks:
    - name: Record what the target set-up got
      ansible.builtin.copy:
        dest: "{{ dfaas_test_marker_dir }}/{{ inventory_hostname }}.json"
        content: "{{ {'playbook_dir': playbook_dir, 'openfaas_functions': openfaas_functions,
                      'gateway_port': openfaas_gateway_node_port} | to_json }}"
        mode: "0644"
      delegate_to: localhost
      become: false
'''


def make_lb_dfaas_playbooks(root: Path, *, setup_target: bool = True) -> Path:
    """A directory shaped like lb's dfaas `ansible/` (with `vars/target.yml`)."""
    _write(root / "vars" / "target.yml", "---\nopenfaas_functions: []\nopenfaas_gateway_node_port: 31112\n")
    _write(root / "tasks" / "setup_target_tasks.yml", "---\n[]\n")
    if setup_target:
        _write(root / "setup_target.yml", _SETUP_TARGET)
    return root
