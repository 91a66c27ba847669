//! Training loop (coming).
