//! Deliberately broken drivers the conformance suite must catch (not yet implemented).
