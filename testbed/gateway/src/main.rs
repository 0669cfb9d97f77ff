use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = dfaas_test_gateway::cli::Args::parse();
    match dfaas_test_gateway::cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dfaas-test-gateway: {err:#}");
            ExitCode::FAILURE
        }
    }
}
