//! Bento driver for Redis / Valkey (not yet implemented).
