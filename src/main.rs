//! `lb-dfaas`: parse the command line, run the library, map the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    lb_dfaas::cli::main()
}
