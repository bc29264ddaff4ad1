//! End-to-end checks live in `tests/`; scripts/e2e.sh runs them.
