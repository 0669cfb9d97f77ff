//! Plan counting and iteration, and the dominance check the campaign runs
//! before every configuration.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use lb_dfaas::config::{Combinations, FunctionName};
use lb_dfaas::plan::{dominates, ConfigId, Configuration, OverloadMemory, Plan, PlanFunction};

fn plan(functions: usize, rates: u64, max_functions: usize) -> Plan {
    Plan::from_functions(
        (0..functions)
            .map(|i| PlanFunction {
                name: FunctionName::parse(&format!("fn-{i:02}")).unwrap(),
                rates: (0..rates).map(|r| r * 10).collect(),
            })
            .collect(),
        Combinations {
            min_functions: 1,
            max_functions,
        },
    )
    .unwrap()
}

fn plan_benches(c: &mut Criterion) {
    let lb_default = plan(2, 21, 3); // 483 configurations
    let large = plan(40, 21, 6); // ~2.6e10 configurations
    c.bench_function("plan/count 40 functions sizes 1..6", |b| {
        b.iter(|| black_box(&large).count())
    });
    c.bench_function("plan/iterate 483", |b| {
        b.iter(|| black_box(&lb_default).iter().count())
    });
    c.bench_function("plan/iterate first 100k of 40 functions", |b| {
        b.iter(|| black_box(&large).iter().take(100_000).count())
    });
    // What `script --config-id` does for an id that is not in the plan
    // (its worst case): hash the first CONFIG_ID_SEARCH_LIMIT configurations.
    let unknown = ConfigId::parse("000000000000").unwrap();
    let limit = lb_dfaas::cli::CONFIG_ID_SEARCH_LIMIT;
    c.bench_function("plan/find an unknown id (100k of 40 functions)", |b| {
        b.iter(|| black_box(&large).find(black_box(&unknown), limit))
    });
    c.bench_function("plan/config_id", |b| {
        let config = lb_default.iter().last().unwrap();
        b.iter(|| black_box(&config).config_id())
    });
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

fn random_configs(seed: u64, n: usize) -> Vec<Configuration> {
    let names: Vec<FunctionName> = ["env", "figlet", "shasum", "nodeinfo"]
        .iter()
        .map(|n| FunctionName::parse(n).unwrap())
        .collect();
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            // Three of the four functions, rates 0..=200 step 10.
            let skip = rng.below(4) as usize;
            Configuration::from_pairs(
                names
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != skip)
                    .map(|(_, f)| (f.clone(), rng.below(21) * 10))
                    .collect::<Vec<_>>(),
            )
            .unwrap()
        })
        .collect()
}

fn dominance_benches(c: &mut Criterion) {
    let overloaded = random_configs(1, 1000);
    let queries = random_configs(2, 1000);
    let mut memory = OverloadMemory::new();
    for o in &overloaded {
        memory.remember(o);
    }
    c.bench_function("dominance/memory 1000 remembered x 1000 checks", |b| {
        b.iter(|| {
            queries
                .iter()
                .filter(|q| memory.dominates_any(black_box(q)))
                .count()
        })
    });
    c.bench_function("dominance/naive 1000 remembered x 1000 checks", |b| {
        b.iter(|| {
            queries
                .iter()
                .filter(|q| overloaded.iter().any(|o| dominates(black_box(q), o)))
                .count()
        })
    });
    c.bench_function("dominance/remember 1000", |b| {
        b.iter(|| {
            let mut m = OverloadMemory::new();
            for o in &overloaded {
                m.remember(black_box(o));
            }
            m.kept_len()
        })
    });
}

criterion_group!(benches, plan_benches, dominance_benches);
criterion_main!(benches);
