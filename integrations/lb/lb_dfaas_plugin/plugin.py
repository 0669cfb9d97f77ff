"""The workload plugins this package registers with lb: ``dfaas`` and
``peva_faas``, both run by the ``lb-dfaas`` binary.

lb's registry takes :data:`PLUGINS` (every plugin of the package, one per
workload name). User plugins are registered after lb's built-ins, so these
replace lb's own Python ``dfaas`` and ``peva_faas`` plugins: existing
benchmark configs (``workloads: {dfaas: {plugin: dfaas}}``, ``plugin:
peva_faas`` with ``plugin_settings.peva_faas``) run unchanged. The two
differ only in their name, which is also the ``plugin`` of the request the
binary gets: it reads the config as that plugin's (peva_faas: k6 on the
runner host, ``k6_host: local``; its ``k3s_host``, ``selection_mode``,
``micro_batch_*`` fields; an ``algorithm_entrypoint`` is refused). Another
workload name is registered by adding its plugin object to :data:`PLUGINS`
(and the name to ``lb-dfaas lb-install``'s check, ``REGISTERED_NAMES``).

A plugin gives lb a config model, a generator (:mod:`.generator`), the
Ansible playbooks named by ``lb-dfaas describe`` with their extra vars, and
the CSV export (``lb-dfaas export``). It validates and interprets nothing
of the config: every field goes to the binary.

lb is optional at import time: when its bases are importable the plugin
and its config subclass them; otherwise stand-ins with the same attributes
are used, which is all lb's registry checks (``hasattr(plugin, "name") and
hasattr(plugin, "create_generator")``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field

from .binary import BinaryNotFound, LbDfaasError, describe, export, find_binary
from .generator import DfaasGenerator

try:  # lb present: subclass its bases so isinstance checks in lb hold.
    from lb_plugins.interface import BasePluginConfig as _ConfigBase
    from lb_plugins.interface import WorkloadPlugin as _PluginBase
except ImportError:  # lb absent (tests, CI): duck-typed stand-ins.

    class _ConfigBase(BaseModel):  # type: ignore[no-redef]
        """Stand-in for lb's ``BasePluginConfig`` (same fields)."""

        max_retries: int = Field(default=0, ge=0)
        timeout_buffer: int = 10
        tags: list[str] = Field(default_factory=list)

    class _PluginBase:  # type: ignore[no-redef]
        """Stand-in for lb's ``WorkloadPlugin``: the optional hooks lb calls."""

        def get_grafana_assets(self) -> Any:
            return None


logger = logging.getLogger("lb_dfaas_plugin")


def lb_builtin_ansible_dir(package: str = "lb_plugins", plugin: str = "dfaas") -> Path | None:
    """The directory of the playbooks of lb's built-in ``plugin`` (dfaas,
    peva_faas), when the importable lb ships its target set-up
    (``setup_target.yml``, which loads ``vars/target.yml`` and runs the same
    tasks as its ``tasks/setup_target_tasks.yml``); None otherwise. Looked
    up without importing lb."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for location in spec.submodule_search_locations or []:
        candidate = Path(location) / "plugins" / plugin / "ansible"
        if (candidate / "setup_target.yml").is_file():
            return candidate.resolve()
    return None


class DfaasConfig(_ConfigBase):
    """lb's view of the dfaas config: every field is accepted and passed to
    the binary, which validates it (``lb-dfaas describe`` has the schema)."""

    model_config = ConfigDict(extra="allow")


class DfaasPlugin(_PluginBase):
    """The ``dfaas`` workload, executed by the ``lb-dfaas`` binary.

    ``environ`` is where the binary is looked up and what it runs with
    (default: the process environment); the generators get it too (see
    :class:`~.generator.DfaasGenerator`).
    """

    NAME = "dfaas"
    DESCRIPTION = "DFaaS sampling campaigns (k6 over SSH + OpenFaaS + Prometheus) run by lb-dfaas"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._manifests: dict[str, dict[str, Any] | None] = {}

    @property
    def name(self) -> str:
        return self.NAME

    @property
    def description(self) -> str:
        return self.DESCRIPTION

    @property
    def config_cls(self) -> type[DfaasConfig]:
        return DfaasConfig

    def create_generator(self, config: Any) -> DfaasGenerator:
        if not isinstance(config, BaseModel):
            config = DfaasConfig(**dict(config or {}))
        return DfaasGenerator(config, environ=self._environ, plugin=self.name)

    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def manifest(self) -> dict[str, Any] | None:
        """``lb-dfaas describe``, cached per binary; None (logged) when unavailable.

        lb asks every plugin for its playbooks when it loads a benchmark
        config, so a missing binary must not raise here.
        """
        try:
            binary = find_binary(self._env())
        except BinaryNotFound as exc:
            key = "<missing>"
            if key not in self._manifests:
                logger.warning("lb-dfaas: %s", exc)
                self._manifests[key] = None
            return None
        key = str(binary)
        if key not in self._manifests:
            try:
                self._manifests[key] = describe(binary, self._environ)
            except LbDfaasError as exc:
                logger.warning("lb-dfaas: %s", exc)
                self._manifests[key] = None
        return self._manifests[key]

    def playbook(self, key: str) -> Path | None:
        """Path of a bundled playbook from the manifest, if it exists."""
        manifest = self.manifest() or {}
        playbooks = manifest.get("playbooks")
        raw = playbooks.get(key) if isinstance(playbooks, Mapping) else None
        if not isinstance(raw, str) or not raw:
            return None
        path = Path(raw).expanduser()
        if path.exists():
            return path
        logger.warning("lb-dfaas: playbook %s (%s) does not exist", key, path)
        return None

    def get_ansible_setup_path(self) -> Path | None:
        return self.playbook("setup_global")

    def get_ansible_collect_pre_path(self) -> Path | None:
        return self.playbook("collect_pre")

    def get_ansible_collect_post_path(self) -> Path | None:
        return self.playbook("collect_post")

    def get_ansible_teardown_path(self) -> Path | None:
        return self.playbook("teardown")

    def settings_extravars(self) -> dict[str, Any]:
        """What every bundled playbook needs: the plugin_settings section
        holding this plugin's fields (the plugin's name)."""
        return {"dfaas_settings_section": self.name}

    def get_ansible_setup_extravars(self) -> dict[str, Any]:
        """Extra vars of setup_global.yml: the settings section, lb's own dfaas
        target set-up when lb ships it (run on every target unless
        ``provision_targets`` is false), and this binary's version (compared
        with the one each target runs). Never raises: lb calls it whenever it
        loads a benchmark config."""
        extravars = self.settings_extravars()
        lb_dir = lb_builtin_ansible_dir(plugin=self.name)
        if lb_dir is not None:
            extravars["dfaas_lb_builtin_ansible_dir"] = str(lb_dir)
        else:
            logger.info(
                "lb-dfaas: lb's built-in %s playbooks were not found; "
                "the set-up cannot provision the targets",
                self.name,
            )
        version = (self.manifest() or {}).get("version")
        if isinstance(version, str) and version:
            extravars["dfaas_binary_version"] = version
        return extravars

    def get_ansible_teardown_extravars(self) -> dict[str, Any]:
        return self.settings_extravars()

    def get_ansible_collect_pre_extravars(self) -> dict[str, Any]:
        return self.settings_extravars()

    def get_ansible_collect_post_extravars(self) -> dict[str, Any]:
        return self.settings_extravars()

    def get_grafana_assets(self) -> Any:
        return None

    def export_results_to_csv(
        self,
        results: list[dict[str, Any]],
        output_dir: Path,
        run_id: str,
        test_name: str,
    ) -> list[Path]:
        """results.csv, skipped.csv, index.csv, summaries/, metrics/ and
        k6_scripts/ from lb's per-repetition entries, as lb's dfaas plugin
        writes them, by ``lb-dfaas export``; the files the binary wrote at
        the same path during the run are kept. Returns the files written."""
        return export(find_binary(self._env()), results, Path(output_dir), self._environ)


class PevaFaasConfig(DfaasConfig):
    """lb's view of the peva_faas config (``plugin_settings.peva_faas``):
    every field is accepted and passed to the binary as a peva_faas
    request, which validates it."""


class PevaFaasPlugin(DfaasPlugin):
    """The ``peva_faas`` workload, executed by the ``lb-dfaas`` binary.

    lb's peva_faas is dfaas plus a memory, with k6 on the runner host
    itself: the binary runs k6 as a child process there (``k6_host:
    local``, the peva_faas default) with the same stop, log streaming and
    summary handling as over SSH. Its playbooks are the bundled ones, given
    the ``peva_faas`` settings section (k6 installed on every target; no
    target provisioning unless ``provision_targets`` is true, when lb's
    peva_faas target set-up is used).
    """

    NAME = "peva_faas"
    DESCRIPTION = (
        "PEVA-faas campaigns (k6 on the runner host + OpenFaaS + Prometheus) run by lb-dfaas"
    )

    @property
    def config_cls(self) -> type[DfaasConfig]:
        return PevaFaasConfig


#: The ``dfaas`` plugin lb registers.
PLUGIN = DfaasPlugin()

#: The ``peva_faas`` plugin lb registers.
PEVA_FAAS_PLUGIN = PevaFaasPlugin()

#: Every plugin of this package, as lb's registry takes them (it prefers
#: ``PLUGINS`` to ``PLUGIN``): one per workload name.
PLUGINS = [PLUGIN, PEVA_FAAS_PLUGIN]
