//! End-to-end tests for meshctl live in `tests/tests/`; they run the built binaries.
