//! Bento driver for SQLite (not yet implemented).
