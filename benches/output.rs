//! Formatting results.csv rows: done once per iteration, but also for whole
//! datasets when results are exported.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use lb_dfaas::config::FunctionName;
use lb_dfaas::output::{FunctionCells, NodeCells, ResultRow};

fn row(functions: &[FunctionName], members: usize) -> ResultRow {
    ResultRow {
        functions: functions
            .iter()
            .take(members)
            .enumerate()
            .map(|(i, f)| {
                (
                    f.clone(),
                    FunctionCells {
                        rate: 10 * i as u64,
                        success_rate: 0.987_654,
                        cpu_usage: 123.456_789,
                        ram_usage: 104_857_600.0,
                        power_usage: f64::NAN,
                        replicas: Some(3),
                        overloaded: false,
                        mean_latency_ms: 12.345_678,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
        node: NodeCells {
            cpu_usage_idle: 5.0,
            cpu_usage: 150.25,
            ram_usage_idle: 1e9,
            ram_usage: 3.5e9,
            ram_usage_idle_pct: 12.5,
            ram_usage_pct: 45.125,
            power_usage_idle: f64::NAN,
            power_usage: f64::NAN,
            rest_seconds: 15,
            overloaded: false,
        },
    }
}

fn csv_benches(c: &mut Criterion) {
    for (total, members) in [(3, 2), (20, 4)] {
        let functions: Vec<FunctionName> = (0..total)
            .map(|i| FunctionName::parse(&format!("fn-{i:02}")).unwrap())
            .collect();
        let r = row(&functions, members);
        c.bench_function(&format!("csv/results line {total} functions"), |b| {
            b.iter(|| black_box(&r).csv_line(&functions).unwrap())
        });
        c.bench_function(&format!("csv/protocol row {total} functions"), |b| {
            b.iter(|| black_box(&r).to_protocol(&functions).unwrap())
        });
    }
}

criterion_group!(benches, csv_benches);
criterion_main!(benches);
