//! Example UDP game server (being built).
