//! EC2 Query protocol (in progress).
