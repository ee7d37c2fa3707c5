//! Bento bus over NATS (not yet implemented).
