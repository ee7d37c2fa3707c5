//! Bento driver for MySQL / MariaDB (not yet implemented).
