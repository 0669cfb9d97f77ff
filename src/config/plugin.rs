//! What differs between the configs of lb's two DFaaS plugins, `dfaas`
//! and `peva_faas` ([`Plugin`]). peva_faas is lb's dfaas plus a memory,
//! with k6 run on the runner host itself; its config has dfaas's fields
//! and defaults but for these:
//!
//! - `k6_host` defaults to `local` (k6 as a child process of this
//!   program, no SSH), and a loopback `k6_host` (`127.0.0.1`, `localhost`,
//!   `::1`, empty: peva_faas's own default and the values its collect step
//!   treats as "not remote") means `local` too;
//! - its default function's body is `Hello PEVA-faas!` and its default
//!   workspace root on a remote k6 host `~/.peva_faas-k6`;
//! - `k3s_host` (default `127.0.0.1`) fills `{host.address}` before the
//!   request context does, and replaces a loopback host in the endpoint
//!   URLs, as lb's peva_faas generator resolves them;
//! - `k3s_user`, `k3s_ssh_key`, `k3s_port`, `selection_mode`,
//!   `micro_batch_size`, `micro_batch_window_s` and `algorithm_entrypoint`
//!   are its own ([`PEVA_FAAS_FIELDS`]); in a dfaas config they are unknown
//!   fields (ignored with a warning).
//!
//! Pure tables and small functions that `raw`/`validate` consult; nothing
//! after validation asks which plugin a config came from but the k6
//! `workload` tag and the default output directory.

use serde_json::{json, Map, Value};

use crate::protocol::Plugin;

/// The `k6_host` that runs k6 on this machine, without SSH.
pub const LOCAL_K6_HOST: &str = "local";

/// Fields only peva_faas has.
pub(crate) const PEVA_FAAS_FIELDS: &[&str] = &[
    "k3s_host",
    "k3s_user",
    "k3s_ssh_key",
    "k3s_port",
    "selection_mode",
    "micro_batch_size",
    "micro_batch_window_s",
    "algorithm_entrypoint",
];

/// peva_faas's `selection_mode` values.
pub(crate) const SELECTION_MODES: &[&str] = &["online", "micro_batch"];

/// The plugin's defaults where they differ from dfaas's (which are
/// `RawConfig::default()`), as a config the received one is deep-merged
/// over (the received fields win).
pub(crate) fn default_overrides(plugin: Plugin) -> Map<String, Value> {
    match plugin {
        Plugin::Dfaas => Map::new(),
        Plugin::PevaFaas => match json!({
            "k6_host": LOCAL_K6_HOST,
            "functions": [{
                "name": "figlet",
                "method": "POST",
                "body": "Hello PEVA-faas!",
                "headers": {"Content-Type": "text/plain"},
            }],
        }) {
            Value::Object(map) => map,
            _ => Map::new(),
        },
    }
}

/// Takes the fields that belong to the other plugin out of `config` and
/// returns their names (reported as unknown fields).
pub(crate) fn take_foreign_fields(plugin: Plugin, config: &mut Map<String, Value>) -> Vec<String> {
    match plugin {
        Plugin::PevaFaas => Vec::new(),
        Plugin::Dfaas => PEVA_FAAS_FIELDS
            .iter()
            .filter(|field| config.remove(**field).is_some())
            .map(|field| field.to_string())
            .collect(),
    }
}

/// Whether `k6_host` asks for k6 on this machine: `local`, or for
/// peva_faas also a loopback address or nothing.
pub(crate) fn k6_runs_locally(plugin: Plugin, k6_host: &str) -> bool {
    if k6_host == LOCAL_K6_HOST {
        return true;
    }
    plugin == Plugin::PevaFaas && is_loopback_name(k6_host)
}

/// The names lb's peva_faas treats as this machine (its collect step's
/// "not remote" list) — compared trimmed and lower-cased, as it does.
fn is_loopback_name(host: &str) -> bool {
    matches!(
        host.trim().to_ascii_lowercase().as_str(),
        "" | "127.0.0.1" | "localhost" | "::1"
    )
}

/// Hosts in an endpoint URL that peva_faas replaces with the k3s node's
/// address (its generator's `_replace_localhost`).
pub(crate) fn is_replaced_url_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "0.0.0.0")
}

/// The directory under the k6 user's home that holds the workspaces on a
/// remote k6 host.
pub(crate) fn workspace_dir_name(plugin: Plugin) -> &'static str {
    match plugin {
        Plugin::Dfaas => ".dfaas-k6",
        Plugin::PevaFaas => ".peva_faas-k6",
    }
}

/// lb's own default `k6_workspace_root` for the plugin: it follows
/// `k6_user` in lb, so this value counts as "not given".
pub(crate) fn lb_default_workspace_root(plugin: Plugin) -> String {
    format!("/home/ubuntu/{}", workspace_dir_name(plugin))
}

/// Where output goes when neither the request context nor the config says.
pub(crate) fn default_output_dir(plugin: Plugin) -> String {
    format!("benchmark_results/{}", plugin.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_k6_hosts() {
        for plugin in Plugin::ALL {
            assert!(k6_runs_locally(plugin, "local"), "{plugin}");
            assert!(!k6_runs_locally(plugin, "10.0.0.9"), "{plugin}");
            assert!(!k6_runs_locally(plugin, "k6.example"), "{plugin}");
        }
        for loopback in [
            "127.0.0.1",
            "localhost",
            "LocalHost",
            "::1",
            "",
            " 127.0.0.1 ",
        ] {
            assert!(k6_runs_locally(Plugin::PevaFaas, loopback), "{loopback:?}");
            assert!(!k6_runs_locally(Plugin::Dfaas, loopback), "{loopback:?}");
        }
        // Only the loopback addresses peva_faas names, not the whole block.
        assert!(!k6_runs_locally(Plugin::PevaFaas, "127.0.0.2"));
    }

    #[test]
    fn foreign_fields_are_peva_faas_fields_in_a_dfaas_config() {
        let config = json!({"k3s_host": "10.0.0.5", "selection_mode": "online", "duration": "5s"});
        let Value::Object(config) = config else {
            unreachable!()
        };
        let mut dfaas = config.clone();
        assert_eq!(
            take_foreign_fields(Plugin::Dfaas, &mut dfaas),
            ["k3s_host", "selection_mode"]
        );
        assert_eq!(dfaas.keys().collect::<Vec<_>>(), ["duration"]);
        let mut peva = config.clone();
        assert!(take_foreign_fields(Plugin::PevaFaas, &mut peva).is_empty());
        assert_eq!(peva, config);
    }

    #[test]
    fn per_plugin_names() {
        assert_eq!(
            lb_default_workspace_root(Plugin::Dfaas),
            "/home/ubuntu/.dfaas-k6"
        );
        assert_eq!(
            lb_default_workspace_root(Plugin::PevaFaas),
            "/home/ubuntu/.peva_faas-k6"
        );
        assert_eq!(
            default_output_dir(Plugin::PevaFaas),
            "benchmark_results/peva_faas"
        );
        assert!(default_overrides(Plugin::Dfaas).is_empty());
        assert_eq!(
            default_overrides(Plugin::PevaFaas)["k6_host"],
            json!("local")
        );
    }
}
