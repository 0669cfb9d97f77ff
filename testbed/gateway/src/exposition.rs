//! Prometheus text exposition of the gateway's state: cAdvisor-style
//! container series (so lb's bundled queries.yml works unchanged), the
//! OpenFaaS-style replica gauge, and the gateway's own request counters.
//!
//! Pure: renders [`Snapshot`]s into a string.

use std::fmt::Write;

use crate::state::Snapshot;

/// Namespace label value, as OpenFaaS deploys functions.
const FUNCTION_NAMESPACE: &str = "openfaas-fn";

pub fn render(snapshots: &[Snapshot]) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_all(&mut out, snapshots);
    out
}

fn container_labels(name: &str) -> String {
    format!(
        "id=\"/kubepods/{name}\",name=\"{name}\",image=\"dfaas-test/{name}:latest\",\
         container_label_io_kubernetes_container_name=\"{name}\",\
         container_label_io_kubernetes_pod_namespace=\"{FUNCTION_NAMESPACE}\""
    )
}

fn write_all(out: &mut String, snapshots: &[Snapshot]) -> std::fmt::Result {
    writeln!(out, "# HELP container_cpu_usage_seconds_total Cumulative CPU time consumed by the function, in seconds.")?;
    writeln!(out, "# TYPE container_cpu_usage_seconds_total counter")?;
    for s in snapshots {
        writeln!(
            out,
            "container_cpu_usage_seconds_total{{{}}} {}",
            container_labels(&s.name),
            s.cpu_seconds_total
        )?;
    }
    writeln!(
        out,
        "# HELP container_memory_usage_bytes Current memory usage of the function, in bytes."
    )?;
    writeln!(out, "# TYPE container_memory_usage_bytes gauge")?;
    for s in snapshots {
        writeln!(
            out,
            "container_memory_usage_bytes{{{}}} {}",
            container_labels(&s.name),
            s.memory_bytes
        )?;
    }
    writeln!(
        out,
        "# HELP gateway_service_count Current replicas of the function."
    )?;
    writeln!(out, "# TYPE gateway_service_count gauge")?;
    for s in snapshots {
        writeln!(
            out,
            "gateway_service_count{{function_name=\"{}\"}} {}",
            s.name, s.replicas
        )?;
    }
    writeln!(
        out,
        "# HELP gateway_function_inflight Calls queued or running."
    )?;
    writeln!(out, "# TYPE gateway_function_inflight gauge")?;
    for s in snapshots {
        writeln!(
            out,
            "gateway_function_inflight{{function=\"{}\"}} {}",
            s.name, s.in_system
        )?;
    }
    writeln!(
        out,
        "# HELP gateway_function_requests_total Calls received."
    )?;
    writeln!(out, "# TYPE gateway_function_requests_total counter")?;
    for s in snapshots {
        writeln!(
            out,
            "gateway_function_requests_total{{function=\"{}\"}} {}",
            s.name, s.requests_total
        )?;
    }
    writeln!(
        out,
        "# HELP gateway_function_responses_total Calls answered, by status code."
    )?;
    writeln!(out, "# TYPE gateway_function_responses_total counter")?;
    for s in snapshots {
        for (code, count) in &s.responses_total {
            writeln!(
                out,
                "gateway_function_responses_total{{function=\"{}\",code=\"{code}\"}} {count}",
                s.name
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn renders_every_series() {
        let text = render(&[Snapshot {
            name: "figlet".into(),
            replicas: 3,
            in_system: 2,
            cpu_seconds_total: 1.25,
            memory_bytes: 1024,
            requests_total: 10,
            responses_total: BTreeMap::from([(200, 8), (429, 2)]),
        }]);
        let labels = "id=\"/kubepods/figlet\",name=\"figlet\",image=\"dfaas-test/figlet:latest\",container_label_io_kubernetes_container_name=\"figlet\",container_label_io_kubernetes_pod_namespace=\"openfaas-fn\"";
        for line in [
            format!("container_cpu_usage_seconds_total{{{labels}}} 1.25"),
            format!("container_memory_usage_bytes{{{labels}}} 1024"),
            "gateway_service_count{function_name=\"figlet\"} 3".to_owned(),
            "gateway_function_inflight{function=\"figlet\"} 2".to_owned(),
            "gateway_function_requests_total{function=\"figlet\"} 10".to_owned(),
            "gateway_function_responses_total{function=\"figlet\",code=\"200\"} 8".to_owned(),
            "gateway_function_responses_total{function=\"figlet\",code=\"429\"} 2".to_owned(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
