"""lb user plugins ``dfaas`` and ``peva_faas``: DFaaS campaigns run by the
``lb-dfaas`` binary.

A package laid out as lb's own plugins are:

- :mod:`.plugin` -- the plugins lb registers (``PLUGINS``: ``dfaas``,
  ``peva_faas``), their
  config model, playbooks, extra vars and CSV export;
- :mod:`.generator` -- one ``lb-dfaas run`` per repetition, its events
  forwarded to lb, ``stop()`` as SIGTERM;
- :mod:`.context` -- the request: the config as JSON and the run context
  reconstructed from what lb leaves around a workload;
- :mod:`.binary` -- finding the executable and its short subcommands
  (``describe``, ``validate``, ``plan``, ``export``), reading ``run``'s result.

``lb-dfaas lb-install`` installs it, with the binary and the playbooks, as
one directory of lb's user plugins::

    lb_plugins/plugins/_user/lb_dfaas_plugin/
        lb_dfaas_plugin/   this package
        bin/lb-dfaas
        ansible/

lb's loader finds ``lb_dfaas_plugin/plugin.py`` in that directory and
imports it as ``lb_dfaas_plugin.plugin`` (this file is then not run). When
lb is pointed at this package's own directory instead, it imports this file
as the entry point: the plugins are exported here too.
"""

from .plugin import PLUGIN, PLUGINS

__all__ = ["PLUGIN", "PLUGINS"]
