//! Composition root (in progress).
