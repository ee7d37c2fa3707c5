//! Example driver from docs/writing-a-driver.md (not yet implemented).
