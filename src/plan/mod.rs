//! The campaign plan: rate ladders, combinations, configurations, ids, dominance.
