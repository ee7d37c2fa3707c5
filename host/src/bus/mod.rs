//! Bus: keeping the L1 caches of many instances coherent (SPEC §6) — being written.
