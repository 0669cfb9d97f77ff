//! The campaign plan against known lb values and naive reference
//! implementations: counts, order, ids, dominance, the `plan` document.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use lb_dfaas::config::{
    Combinations, Config, Cooldown, FunctionName, FunctionSpec, HttpMethod, K6Host, Overload,
    RateStrategy,
};
use lb_dfaas::plan::{
    dominates, write_plan_json, ConfigKey, Configuration, IndexedConfigs, OverloadMemory, Plan,
    PlanError, PlanFunction,
};
use serde_json::{json, Value};

fn name(n: &str) -> FunctionName {
    FunctionName::parse(n).unwrap()
}

fn linear(min: u64, max: u64, step: u64) -> Vec<u64> {
    (min..=max).step_by(step as usize).collect()
}

/// A validated config as `config` would build it, with only the fields the
/// plan reads varying.
fn config(functions: &[(&str, Option<u64>)], rates: Vec<u64>, min: usize, max: usize) -> Config {
    Config {
        plugin: Default::default(),
        k6: K6Host {
            host: "127.0.0.1".into(),
            user: "root".into(),
            ssh_key: "/root/.ssh/id_rsa".into(),
            port: 22,
            workspace_root: "/root/.dfaas-k6".into(),
            known_hosts_file: None,
            reconnect_within: std::time::Duration::from_secs(60),
            outputs: vec![],
            tags: BTreeMap::new(),
            log_stream: true,
        },
        k6_hosts: vec![],
        saturation: lb_dfaas::config::Saturation::default(),
        gateway_url: "http://127.0.0.1:31112".into(),
        prometheus_url: "http://127.0.0.1:30411".into(),
        openfaas_auth: None,
        prometheus_auth: None,
        tls: lb_dfaas::config::Tls::default(),
        functions: functions
            .iter()
            .map(|&(n, max_rate)| FunctionSpec {
                name: name(n),
                method: HttpMethod::Get,
                body: String::new(),
                headers: BTreeMap::new(),
                max_rate,
            })
            .collect(),
        rates,
        rate_strategy: RateStrategy::Linear {
            min_rate: 0,
            max_rate: 200,
            step: 10,
        },
        combinations: Combinations {
            min_functions: min,
            max_functions: max,
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
            success_rate_function_min: 0.9,
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
}

/// lb's enumeration, written the obvious way and fully materialised:
/// sizes, then combinations of sorted names, then the rate product with the
/// first function slowest.
fn naive_plan(
    functions: &[(&str, Option<u64>)],
    rates: &[u64],
    min: usize,
    max: usize,
) -> Vec<String> {
    let mut names: Vec<(&str, Option<u64>)> = functions.to_vec();
    names.sort();
    fn combos<T: Clone>(items: &[T], k: usize) -> Vec<Vec<T>> {
        if k == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            for mut rest in combos(&items[i + 1..], k - 1) {
                rest.insert(0, items[i].clone());
                out.push(rest);
            }
        }
        out
    }
    fn product(lists: &[Vec<String>]) -> Vec<Vec<String>> {
        match lists.split_first() {
            None => vec![vec![]],
            Some((first, rest)) => first
                .iter()
                .flat_map(|x| {
                    product(rest).into_iter().map(move |mut tail| {
                        tail.insert(0, x.clone());
                        tail
                    })
                })
                .collect(),
        }
    }
    let mut out = Vec::new();
    for k in min..max {
        for combo in combos(&names, k) {
            let lists: Vec<Vec<String>> = combo
                .iter()
                .map(|(n, max_rate)| {
                    rates
                        .iter()
                        .filter(|&&r| max_rate.map_or(true, |m| r <= m))
                        .map(|r| format!("{n}:{r}"))
                        .collect()
                })
                .collect();
            out.extend(product(&lists).into_iter().map(|c| c.join("|")));
        }
    }
    out
}

#[test]
fn counts_match_lb() {
    let ladder = linear(0, 200, 10);
    assert_eq!(ladder.len(), 21);
    let cases = [
        (
            config(&[("env", None), ("figlet", None)], ladder.clone(), 1, 3),
            483,
        ),
        (
            config(
                &[("env", None), ("figlet", Some(100))],
                ladder.clone(),
                1,
                3,
            ),
            263,
        ),
        (
            config(&[("env", None), ("figlet", None)], vec![0, 10], 1, 2),
            4,
        ),
    ];
    for (cfg, want) in cases {
        let plan = Plan::new(&cfg);
        assert_eq!(plan.count(), Ok(want));
        assert_eq!(plan.iter().count() as u128, want);
    }
}

#[test]
fn order_matches_naive_enumeration() {
    type Case = (Vec<(&'static str, Option<u64>)>, Vec<u64>, usize, usize);
    let cases: Vec<Case> = vec![
        (
            vec![("figlet", None), ("env", None)],
            linear(0, 200, 10),
            1,
            3,
        ),
        (
            vec![("figlet", Some(100)), ("env", None)],
            linear(0, 200, 10),
            1,
            3,
        ),
        (
            vec![
                ("shasum", Some(30)),
                ("env", None),
                ("figlet", Some(0)),
                ("cows", None),
            ],
            vec![0, 10, 20, 50],
            1,
            5,
        ),
        (
            vec![("a", None), ("b", None), ("c", None)],
            vec![5, 7],
            2,
            3,
        ),
        (vec![("a", None), ("b", None)], vec![1], 3, 9),
        (vec![("a", Some(3)), ("b", None)], vec![5, 7], 1, 3),
    ];
    for (functions, rates, min, max) in cases {
        let plan = Plan::new(&config(&functions, rates.clone(), min, max));
        let got: Vec<String> = plan.iter().map(|c| c.to_string()).collect();
        let want = naive_plan(&functions, &rates, min, max);
        assert_eq!(got, want, "{functions:?} {rates:?} {min}..{max}");
        assert_eq!(plan.count(), Ok(want.len() as u128));
    }
}

#[test]
fn known_ids_in_a_plan() {
    let plan = Plan::new(&config(
        &[("env", None), ("figlet", None)],
        linear(0, 200, 10),
        1,
        3,
    ));
    let ids: HashSet<String> = plan.iter().map(|c| c.config_id().to_string()).collect();
    assert_eq!(ids.len(), 483, "ids are unique within a plan");
    for id in ["63a789418109", "a6836d82b30b", "4a1787314ac5"] {
        assert!(ids.contains(id), "{id}");
    }
    let first = plan.iter().next().unwrap();
    assert_eq!(first.to_string(), "env:0");
    let last = plan.iter().last().unwrap();
    assert_eq!(last.to_string(), "env:200|figlet:200");
}

#[test]
fn huge_plans_are_counted_and_iterated_lazily() {
    let functions: Vec<String> = (0..40).map(|i| format!("fn-{i:02}")).collect();
    let specs: Vec<(&str, Option<u64>)> = functions.iter().map(|f| (f.as_str(), None)).collect();
    let plan = Plan::new(&config(&specs, linear(0, 200, 10), 1, 6));
    // sum over k=1..5 of C(40,k) * 21^k
    let binom = |n: u128, k: u128| (0..k).fold(1u128, |acc, i| acc * (n - i) / (i + 1));
    let want: u128 = (1..6).map(|k| binom(40, k) * 21u128.pow(k as u32)).sum();
    assert_eq!(plan.count(), Ok(want));
    assert!(want > 1_000_000_000_000);
    let head: Vec<String> = plan.iter().take(3).map(|c| c.to_string()).collect();
    assert_eq!(head, ["fn-00:0", "fn-00:10", "fn-00:20"]);
    // Jump into size 2 without materialising anything: the 841st item.
    let c = plan.iter().nth(40 * 21).unwrap();
    assert_eq!(c.to_string(), "fn-00:0|fn-01:0");
}

#[test]
fn count_overflow_is_an_error() {
    let functions: Vec<String> = (0..60).map(|i| format!("f{i}")).collect();
    let plan = Plan::from_functions(
        functions
            .iter()
            .map(|f| PlanFunction {
                name: name(f),
                rates: (0..1000).collect(),
            })
            .collect(),
        Combinations {
            min_functions: 1,
            max_functions: 61,
        },
    )
    .unwrap();
    assert_eq!(plan.count(), Err(PlanError::CountOverflow));
    assert_eq!(plan.iter().next().unwrap().to_string(), "f0:0");
}

/// splitmix64: deterministic, good enough to shuffle test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_config(rng: &mut Rng, pool: &[&str], rate_levels: u64) -> Configuration {
    let mut pairs = Vec::new();
    for f in pool {
        if rng.below(2) == 0 {
            pairs.push((name(f), rng.below(rate_levels) * 10));
        }
    }
    if pairs.is_empty() {
        pairs.push((
            name(pool[rng.below(pool.len() as u64) as usize]),
            rng.below(rate_levels) * 10,
        ));
    }
    Configuration::from_pairs(pairs).unwrap()
}

#[test]
fn overload_memory_agrees_with_naive_scan() {
    let pool = ["env", "figlet", "shasum"];
    let (mut kept, mut remembered) = (0, 0);
    for seed in 0..20 {
        let mut rng = Rng(seed);
        let mut memory = OverloadMemory::new();
        let mut naive: Vec<Configuration> = Vec::new();
        let levels = 2 + seed % 6;
        for step in 0..600 {
            let c = random_config(&mut rng, &pool, levels);
            if rng.below(3) == 0 {
                memory.remember(&c);
                naive.push(c);
            } else {
                let want = naive.iter().any(|o| dominates(&c, o));
                assert_eq!(
                    memory.dominates_any(&c),
                    want,
                    "seed {seed} step {step}: {c}"
                );
            }
        }
        kept += memory.kept_len();
        remembered += naive.len();
    }
    // Random order exercises pruning.
    assert!(kept < remembered / 2, "kept {kept} of {remembered}");
}

#[test]
fn campaign_skips_match_naive_in_plan_order() {
    // A synthetic node: overloaded when the total rate exceeds 150 req/s.
    let cfg = config(
        &[("env", None), ("figlet", None), ("shasum", Some(100))],
        linear(0, 200, 10),
        1,
        4,
    );
    let plan = Plan::new(&cfg);
    let overloaded = |c: &Configuration| c.rates().iter().sum::<u64>() > 150;
    let mut memory = OverloadMemory::new();
    let mut remembered: Vec<Configuration> = Vec::new();
    let (mut ran, mut skipped) = (0, 0);
    for c in plan.iter() {
        let naive = remembered.iter().any(|o| dominates(&c, o));
        assert_eq!(memory.dominates_any(&c), naive, "{c}");
        if naive {
            skipped += 1;
            continue;
        }
        ran += 1;
        if overloaded(&c) {
            memory.remember(&c);
            remembered.push(c);
        }
    }
    assert!(skipped > 0 && ran > 0);
    assert_eq!(ran + skipped, plan.count().unwrap());
    // In plan order a remembered configuration is lexicographically after
    // earlier ones of its bucket and never dominates them (it would have been
    // skipped), so nothing is pruned.
    assert_eq!(memory.kept_len(), remembered.len());
}

fn plan_json(cfg: &Config, indexed: &IndexedConfigs, limit: Option<u64>) -> Value {
    let mut out = Vec::new();
    write_plan_json(&mut out, cfg, &Plan::new(cfg), indexed, limit).unwrap();
    assert!(out.ends_with(b"}\n"));
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn plan_document_lists_everything_with_exact_counts() {
    let cfg = config(&[("figlet", None), ("env", None)], vec![0, 10], 1, 2);
    let mut indexed = IndexedConfigs::new();
    indexed.insert(ConfigKey::new(vec!["figlet".into()], vec![10]).unwrap());
    // Not part of this plan: must not count.
    indexed.insert(ConfigKey::new(vec!["env".into(), "figlet".into()], vec![0, 10]).unwrap());
    let doc = plan_json(&cfg, &indexed, None);
    assert_eq!(
        doc,
        json!({
            "functions": ["figlet", "env"],
            "rates": [0, 10],
            "combinations": {"min_functions": 1, "max_functions": 2},
            "iterations": 3,
            "duration": "30s",
            "count": 4,
            "to_run": 3,
            "already_indexed": 1,
            "estimated_runtime_seconds": 270,
            // 270 s of k6, 3 x 3 iterations x (180 s cooldown + 30 s), 120 s.
            "runtime_upper_bound_seconds": 270 + 9 * 210 + 120,
            "configurations": [
                {"index": 0, "config_id": Configuration::from_pairs([(name("env"), 0)]).unwrap().config_id().as_str(),
                 "pairs": [{"function": "env", "rate": 0}], "skip": null},
                {"index": 1, "config_id": Configuration::from_pairs([(name("env"), 10)]).unwrap().config_id().as_str(),
                 "pairs": [{"function": "env", "rate": 10}], "skip": null},
                {"index": 2, "config_id": Configuration::from_pairs([(name("figlet"), 0)]).unwrap().config_id().as_str(),
                 "pairs": [{"function": "figlet", "rate": 0}], "skip": null},
                {"index": 3, "config_id": "63a789418109",
                 "pairs": [{"function": "figlet", "rate": 10}], "skip": "already_indexed"}
            ],
            "truncated": false
        })
    );
    let keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "functions",
            "rates",
            "combinations",
            "iterations",
            "duration",
            "count",
            "to_run",
            "already_indexed",
            "estimated_runtime_seconds",
            "runtime_upper_bound_seconds",
            "configurations",
            "truncated"
        ]
    );
}

#[test]
fn plan_document_limit_keeps_counts_exact() {
    let cfg = config(&[("env", None), ("figlet", None)], linear(0, 200, 10), 1, 3);
    for (limit, listed, truncated) in [
        (Some(0), 0, true),
        (Some(5), 5, true),
        (Some(483), 483, false),
        (None, 483, false),
    ] {
        let doc = plan_json(&cfg, &IndexedConfigs::new(), limit);
        assert_eq!(doc["count"], 483);
        assert_eq!(doc["to_run"], 483);
        assert_eq!(
            doc["configurations"].as_array().unwrap().len(),
            listed,
            "{limit:?}"
        );
        assert_eq!(doc["truncated"], truncated, "{limit:?}");
    }
}

#[test]
fn plan_document_of_an_overflowing_plan_is_an_error() {
    let names: Vec<String> = (0..60).map(|i| format!("f{i}")).collect();
    let specs: Vec<(&str, Option<u64>)> = names.iter().map(|f| (f.as_str(), None)).collect();
    let cfg = config(&specs, (0..1000).collect(), 1, 61);
    let mut out = Vec::new();
    let err = write_plan_json(
        &mut out,
        &cfg,
        &Plan::new(&cfg),
        &IndexedConfigs::new(),
        Some(1),
    )
    .unwrap_err();
    assert!(err.to_string().contains("128 bits"), "{err}");
    assert!(out.is_empty(), "nothing written before the error");
}
