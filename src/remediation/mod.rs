//! Remediation: the watchdog that restarts a hung gateway within a budget.

pub mod budget;
pub mod state;
pub mod watchdog;
