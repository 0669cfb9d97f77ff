//! CSV datasets (results.csv, skipped.csv, index.csv) and per-iteration artifacts.
