//! Data (coming).
