//! k6: script generation (pure), summary parsing (pure), remote runner (SSH).
pub mod runner;
