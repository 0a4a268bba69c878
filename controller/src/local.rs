//! The local runtime: embedded store, process supervisor, in-process SDK sidecars.
