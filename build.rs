//! Links lb-dfaas against the prebuilt DuckDB shared library.
//!
//! The `duckdb` crate is used without its `bundled` feature (which compiles
//! DuckDB's C++ sources: ~19 minutes and a 9 GB target/ on two cores), so
//! `libduckdb-sys` asks for `-lduckdb` and this script says where it is:
//! `$DUCKDB_LIB_DIR` when set, else `.libduckdb/1.4.4/`, filled by
//! `scripts/libduckdb.sh` (which `scripts/setup.sh` runs). Every binary
//! of this package gets two run-time search paths for the library:
//! `$ORIGIN` (a copy of the binary with `libduckdb.so` beside it, as
//! `lb-dfaas lb-install` lays them out) and the directory it was linked
//! from (binaries run in place, test binaries).

use std::env;
use std::path::PathBuf;

/// The DuckDB version lb pins (Python `duckdb` 1.4.4) and the crate links.
const DUCKDB_VERSION: &str = "1.4.4";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    let dir = match env::var_os("DUCKDB_LIB_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let Some(manifest) = env::var_os("CARGO_MANIFEST_DIR") else {
                eprintln!("build.rs: CARGO_MANIFEST_DIR is not set (run through cargo)");
                std::process::exit(1);
            };
            PathBuf::from(manifest)
                .join(".libduckdb")
                .join(DUCKDB_VERSION)
        }
    };
    let lib = dir.join("libduckdb.so");
    println!("cargo:rerun-if-changed={}", lib.display());
    if !lib.is_file() {
        eprintln!(
            "\nlb-dfaas links DuckDB {DUCKDB_VERSION} as a shared library, and {} is missing.\n\
             Run `bash scripts/libduckdb.sh` (it fetches the library from the npm registry;\n\
             `scripts/setup.sh` runs it too), or set DUCKDB_LIB_DIR to a directory holding\n\
             libduckdb.so of DuckDB {DUCKDB_VERSION}.\n",
            lib.display()
        );
        std::process::exit(1);
    }
    let dir = dir.canonicalize().unwrap_or(dir);
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}
