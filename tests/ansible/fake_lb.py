"""Small stand-ins for lb on a target and for lb's dfaas playbooks, built
in a test's directory.

`make_lb_workdir` lays out what lb's setup.yml leaves in `lb_workdir`: a
`.venv/bin/python` (a real python) and an `lb_plugins` package whose
`api.create_registry()` resolves plugin names the way lb's registry does:
the built-in `lb_plugins.plugins.dfaas.plugin`, then every user plugin
directory `lb_plugins/plugins/_user/<dir>/<dir>.py`, the last registration
of a name winning. The user plugin is the project's real
`integrations/lb/lb_dfaas_plugin.py`, with or without a `bin/lb-dfaas`.

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
LB_PLUGIN_SOURCE = REPO / "integrations" / "lb" / "lb_dfaas_plugin.py"

_API = '''\
import importlib
import importlib.util
import sys
from pathlib import Path


class Registry:
    def __init__(self):
        self._plugins = {}
        self.register(importlib.import_module("lb_plugins.plugins.dfaas.plugin").PLUGIN)
        user = Path(__file__).resolve().parent / "plugins" / "_user"
        for directory in sorted(user.iterdir()) if user.is_dir() else []:
            entry = directory / (directory.name + ".py")
            if directory.name.startswith("_") or not entry.is_file():
                continue
            spec = importlib.util.spec_from_file_location(directory.name, entry)
            module = importlib.util.module_from_spec(spec)
            sys.modules[directory.name] = module
            spec.loader.exec_module(module)
            self.register(module.PLUGIN)

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
        shutil.copy(LB_PLUGIN_SOURCE, installed / "lb_dfaas_plugin.py")
        if binary is not None:
            _write(installed / "bin" / "lb-dfaas", binary, executable=True)
    return root


def installed_plugin_file(lb_workdir: Path) -> Path:
    return lb_workdir / "lb_plugins" / "plugins" / "_user" / "lb_dfaas_plugin" / "lb_dfaas_plugin.py"


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
