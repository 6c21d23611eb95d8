//! Acting on a gateway: the restart methods ([`method`]) and the field
//! report's standard recovery procedure, §5.1 ([`recover`]); the watchdog
//! that runs it on a hung gateway within a budget ([`watchdog`], [`budget`],
//! [`state`]).

pub mod budget;
mod kill;
pub mod method;
pub mod recover;
pub mod runner;
pub mod state;
pub mod watchdog;
