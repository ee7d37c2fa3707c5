//! Bento bus over Redis pub/sub (not yet implemented).
