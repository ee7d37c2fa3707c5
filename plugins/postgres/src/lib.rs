//! Bento driver for PostgreSQL (not yet implemented).
