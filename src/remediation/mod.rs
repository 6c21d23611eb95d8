//! Acting on a gateway: the restart methods ([`method`]) and the field
//! report's standard recovery procedure, §5.1 ([`recover`]).

mod kill;
pub mod method;
pub mod recover;
